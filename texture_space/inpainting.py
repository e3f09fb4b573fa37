"""Fill unseen texels from their seen neighbours: multigrid diffusion or OpenCV's inpainting.

* ``"diffusion"``: a membrane (Laplace) fill solved coarse to fine, vectorised over a batch of
  maps. The seen texels are averaged down a pyramid (pull), every level's unseen texels start
  from the coarser level's solution and are relaxed by Jacobi sweeps of the 4-neighbour mean
  with the seen texels fixed (push). Holes of any size, including texels no photo saw and the
  background of the UV atlas, get a smooth fill in ``O(H W)`` per map.
* ``"telea"`` / ``"ns"``: ``cv2.inpaint`` (fast marching / Navier-Stokes) per map and channel on
  float32 images, for small holes where its edge continuation looks better.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

InpaintMethod = Literal["diffusion", "telea", "ns"]


def _pool(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum 2x2 blocks of weighted values ``(n, H, W, 3)`` and weights ``(n, H, W)`` (odd sizes padded)."""
    height, width = weights.shape[1:]
    pad = ((0, 0), (0, height % 2), (0, width % 2))
    weights = np.pad(weights, pad)
    values = np.pad(values, pad + ((0, 0),))
    n, h2, w2 = weights.shape[0], weights.shape[1] // 2, weights.shape[2] // 2
    pooled_w = weights.reshape(n, h2, 2, w2, 2).sum(axis=(2, 4))
    pooled_v = values.reshape(n, h2, 2, w2, 2, 3).sum(axis=(2, 4))
    return pooled_v, pooled_w


def _relax(solution: np.ndarray, known: np.ndarray, sweeps: int) -> np.ndarray:
    """Jacobi sweeps of the 4-neighbour mean on unknown texels of ``(n, H, W, 3)``; edges reflect."""
    unknown = ~known
    if not unknown.any():
        return solution
    for _ in range(sweeps):
        padded = np.pad(solution, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        neighbours = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]) * 0.25
        solution = np.where(unknown[..., None], neighbours, solution)
    return solution


def diffusion_fill(maps: np.ndarray, known: np.ndarray, sweeps: int = 8) -> np.ndarray:
    """Membrane fill of the unknown texels of a batch of maps, coarse to fine.

    Args:
        maps: ``(n, H, W, 3)`` RGB maps; values at unknown texels are ignored.
        known: ``(n, H, W)`` bool, True where the value is kept.
        sweeps: Jacobi sweeps per pyramid level.

    Returns:
        ``(n, H, W, 3)`` float32; known texels unchanged, unknown ones smoothly interpolated.
        A map with no known texel at all comes back as zeros.
    """
    values = np.where(known[..., None], maps, 0.0).astype(np.float64)
    weights = known.astype(np.float64)
    levels = [(values, weights)]
    while min(weights.shape[1:]) > 1 and not (levels[-1][1] > 0).all():
        values, weights = _pool(values, weights)
        levels.append((values, weights))
    solution = None
    for values, weights in reversed(levels):
        seen = weights > 0
        mean = values / np.maximum(weights, 1e-300)[..., None]
        if solution is None:
            solution = np.where(seen[..., None], mean, 0.0)
        else:
            height, width = weights.shape[1:]
            upsampled = solution.repeat(2, axis=1).repeat(2, axis=2)[:, :height, :width]
            solution = np.where(seen[..., None], mean, upsampled)
        solution = _relax(solution, seen, sweeps)
    return solution.astype(np.float32)


def opencv_fill(maps: np.ndarray, known: np.ndarray, method: Literal["telea", "ns"] = "telea", radius: float = 5.0) -> np.ndarray:
    """``cv2.inpaint`` of the unknown texels, per map and channel on 16-bit images.

    Values are quantised to 1/65535 for OpenCV (its float32 path is not reliable across
    versions) and the filled texels read back as float; known texels keep their exact values.

    Args:
        maps: ``(n, H, W, 3)`` RGB maps; known: ``(n, H, W)`` bool.
        method: ``"telea"`` (fast marching) or ``"ns"`` (Navier-Stokes).
        radius: neighbourhood radius in texels.

    Returns:
        ``(n, H, W, 3)`` float32 with the unknown texels filled (clipped to [0, 1]).
    """
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    filled = np.array(maps, dtype=np.float32)
    for index in range(filled.shape[0]):
        hole = (~known[index]).astype(np.uint8)
        if not hole.any():
            continue
        for channel in range(3):
            image = np.rint(np.clip(filled[index, :, :, channel], 0.0, 1.0) * 65535.0).astype(np.uint16)
            result = cv2.inpaint(image, hole, radius, flag).astype(np.float32) / np.float32(65535.0)
            filled[index, :, :, channel] = np.where(hole > 0, result, filled[index, :, :, channel])
    return filled


def inpaint_maps(maps: np.ndarray, known: np.ndarray, method: InpaintMethod = "diffusion") -> np.ndarray:
    """Fill the unknown texels of ``(n, H, W, 3)`` maps by ``method``; see the module docstring."""
    if method == "diffusion":
        return diffusion_fill(maps, known)
    if method in ("telea", "ns"):
        return opencv_fill(maps, known, method)
    raise ValueError(f"unknown inpainting method {method!r}; use 'diffusion', 'telea' or 'ns'.")
