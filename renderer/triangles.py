"""Per-triangle kernels shared by both rasteriser backends, shading and texture unwrapping.

* :func:`batched_face_index` / :func:`gather_corners`: the corners of every (batch element,
  face) pair, gathered once in the coordinate-major layout the vectorised kernels use.
* :func:`screen_area` and :func:`drawable_triangles`: the one rule that decides which
  triangles a rasteriser draws (the torch rasteriser and the nvdiffrast backend both apply it,
  so they agree triangle for triangle).

Screen space is the renderer's (pixels, origin top-left, x right, y down, pixel centres at
``i + 0.5``; third coordinate the depth, smaller nearer, or ``z_cam`` for perspective cameras;
see :mod:`flamefit.renderer.rasterize`).
"""

from __future__ import annotations

import torch

__all__ = ["batched_face_index", "gather_corners", "screen_area", "drawable_triangles"]


def batched_face_index(faces: torch.Tensor, batch: int, n_vertices: int) -> torch.Tensor:
    """Rows of a ``(B * V, ...)`` stacked vertex table for every corner of every (item, face).

    Args:
        faces: ``(F, 3)`` int64 vertex indices.
        batch: ``B``. n_vertices: ``V``.

    Returns:
        ``(3, B * F)`` int64: ``[k, b * F + f] = b * V + faces[f, k]`` (batch-major; just
        ``faces.T`` when ``B == 1``).
    """
    index = faces.T  # (3, F)
    if batch > 1:
        offsets = torch.arange(0, batch * n_vertices, n_vertices, device=faces.device)
        index = (index[:, None, :] + offsets[:, None]).reshape(3, -1)  # (3, B * F)
    return index


def gather_corners(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Corners of every (batch element, face) in coordinate-major layout.

    Args:
        vertices: ``(B, V, C)`` (any space).
        faces: ``(F, 3)`` int64.

    Returns:
        ``(C, 3, B * F)``: ``[c, k, t]`` is coordinate ``c`` of corner ``k`` of triangle ``t``
        (``t = b * F + f``, batch-major). Each ``[c, k]`` row is contiguous, so the per-triangle
        arithmetic runs on contiguous vectors; the gather is one ``index_select`` along the
        last dim of the transposed vertices, whose backward is an ``index_add``.
    """
    batch, n_vertices, channels = vertices.shape
    index = batched_face_index(faces, batch, n_vertices)
    by_coordinate = vertices.reshape(-1, channels).T.contiguous()  # (C, B * V)
    return by_coordinate.index_select(1, index.reshape(-1)).view(channels, 3, -1)


def screen_area(corners: torch.Tensor) -> torch.Tensor:
    """Twice the signed screen-space area of each triangle.

    Args:
        corners: ``(C >= 2, 3, T)`` from :func:`gather_corners` (x, y first, screen space).

    Returns:
        ``(T,)`` ``(x2 - x0) (y1 - y0) - (x1 - x0) (y2 - y0)``: positive when the corners
        appear counter-clockwise to the viewer (front-facing) in the y-down screen frame.
    """
    x, y = corners[0], corners[1]
    d1x, d1y = x[1] - x[0], y[1] - y[0]
    d2x, d2y = x[2] - x[0], y[2] - y[0]
    return d2x * d1y - d1x * d2y


def drawable_triangles(
    corners: torch.Tensor, cull_backfaces: bool, perspective_correct: bool, near: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which triangles a rasteriser draws, and their signed areas.

    A triangle is drawn when its area and its depths are finite (a non-finite corner, or
    finite corners so large that these overflow, drop it), its area is not zero, it faces the
    viewer when ``cull_backfaces``, and, when ``perspective_correct``, every corner is in front
    of the near plane (``z_cam > near``; no clipping: a triangle reaching behind is dropped whole).

    Args:
        corners: ``(3, 3, T)`` screen-space corners ``(x px, y px, depth)`` from
            :func:`gather_corners`, any float dtype (computed in it).
        cull_backfaces, perspective_correct, near: as in :func:`flamefit.renderer.rasterize.rasterize`.

    Returns:
        ``(drawable (T,) bool, area (T,))`` with ``area`` from :func:`screen_area`.
    """
    area = screen_area(corners)
    z = corners[2]
    drawable = torch.isfinite(area) & torch.isfinite(z[0] + z[1] + z[2]) & (area != 0)
    if cull_backfaces:
        drawable &= area > 0
    if perspective_correct:
        drawable &= z.amin(0) > near
    return drawable, area
