"""Texel-space helpers for albedo models made in a UV atlas: which triangle covers each texel,
filling uncovered texels, and smooth bumps over model-space points.

Images are ``(H, W, ...)`` with row 0 the top of the texture (v = 1 in OBJ convention).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def rasterise_atlas(vt: np.ndarray, ft: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre, and where.

    Args:
        vt: ``(T, 2)`` texture coordinates (OBJ convention); ft: ``(F, 3)`` indices into vt.

    Returns:
        ``(H, W)`` int64 face index (-1 where no triangle) and ``(H, W, 3)`` barycentrics; row 0
        is the top of the image.
    """
    px = np.stack([vt[:, 0] * resolution - 0.5, (1.0 - vt[:, 1]) * resolution - 0.5], 1)
    tri = px[ft]  # (F, 3, 2)
    lo = np.clip(np.floor(tri.min(1)).astype(int), 0, resolution - 1)
    hi = np.clip(np.ceil(tri.max(1)).astype(int), 0, resolution - 1)
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    face = np.repeat(np.arange(len(ft)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    col = lo[face, 0] + local % span[face, 0]
    row = lo[face, 1] + local // span[face, 0]
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    w1 = ((col - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (row - a[:, 1])) / det
    w2 = ((b[:, 0] - a[:, 0]) * (row - a[:, 1]) - (col - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
    w0 = 1.0 - w1 - w2
    inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
    face_map = np.full((resolution, resolution), -1, dtype=np.int64)
    bary_map = np.zeros((resolution, resolution, 3))
    face_map[row[inside], col[inside]] = face[inside]
    bary_map[row[inside], col[inside]] = np.stack([w0, w1, w2], 1)[inside]
    return face_map, bary_map


def fill_outside(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy each uncovered texel from its nearest covered one (so sampling never sees black)."""
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def bump(points: np.ndarray, centre, sigma) -> np.ndarray:
    """Gaussian bump ``exp(-|(points - centre) / sigma|^2 / 2)`` over the last axis."""
    q = (points - np.asarray(centre, dtype=float)) / np.asarray(sigma, dtype=float)
    return np.exp(-0.5 * np.sum(q * q, axis=-1))


#: The components of :func:`named_albedo_basis`, in order.
ALBEDO_COMPONENT_NAMES = (
    "skin tone (light - dark)", "redness", "yellowness", "lip colour", "brow darkness",
    "stubble", "cheek blush", "iris hue (brown - blue)", "iris lightness", "sclera tint",
    "scalp shade", "nose and forehead tone",
)


def named_albedo_basis(mean: np.ndarray, skin: np.ndarray, lips: np.ndarray, brows: np.ndarray,
                       stubble: np.ndarray, blush: np.ndarray, iris_ring: np.ndarray,
                       sclera: np.ndarray, scalp: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """``(H, W, 3, 12)`` RGB change per unit coefficient of each :data:`ALBEDO_COMPONENT_NAMES`
    component, from ``(H, W)`` region weights (``skin`` 0/1, the others in [0, 1]) and the
    ``(H, W, 3)`` mean; each small enough that +-3 keeps the albedo plausible."""
    skin_f = skin.astype(float)[..., None]
    return np.stack(
        [
            -0.08 * mean * skin_f,
            skin_f * [0.035, -0.008, -0.012],
            skin_f * [0.015, 0.012, -0.03],
            lips[..., None] * [0.05, -0.025, -0.01],
            brows[..., None] * [-0.06, -0.05, -0.045],
            stubble[..., None] * [-0.04, -0.04, -0.035],
            blush[..., None] * [0.04, -0.015, -0.01],
            iris_ring[..., None] * [-0.05, 0.0, 0.05],
            iris_ring[..., None] * [0.055, 0.055, 0.055],
            sclera[..., None] * [0.01, -0.01, -0.025],
            scalp[..., None] * [-0.06, -0.055, -0.05],
            tone[..., None] * [0.03, 0.02, 0.015],
        ],
        axis=-1,
    )
