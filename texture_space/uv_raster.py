"""Rasterise a UV layout in UV space: which triangle and barycentrics cover each texel centre.

Texel ``(row, col)`` of an ``H x W`` texture has its centre at ``u = (col + 0.5) / W`` and
``v = 1 - (row + 0.5) / H`` (OBJ convention: v = 0 is the bottom row of the image, row 0 is the
top). The rasteriser is vectorised over triangles: every triangle lists the texel centres in
its bounding box, all candidates are tested at once, and a texel covered by several triangles
(shared edges, overlapping charts) keeps the candidate with the largest smallest barycentric,
i.e. the triangle it lies most inside.
"""

from __future__ import annotations

import numpy as np


def uv_to_texel(uv: np.ndarray, resolution: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 2)`` UV coordinates (OBJ convention) -> integer ``(row, col)`` of the texel holding them.

    Coordinates outside [0, 1] are clamped to the border texels.
    """
    height, width = resolution
    col = np.clip(np.floor(uv[..., 0] * width), 0, width - 1).astype(np.int64)
    row = np.clip(np.floor((1.0 - uv[..., 1]) * height), 0, height - 1).astype(np.int64)
    return row, col


def rasterize_uv(
    vt: np.ndarray,
    ft: np.ndarray,
    resolution: tuple[int, int],
    max_candidates: int = 2**22,
) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre of a UV layout, and where.

    Args:
        vt: ``(T, 2)`` texture coordinates in [0, 1], OBJ convention (v up).
        ft: ``(F, 3)`` indices into ``vt`` per triangle corner.
        resolution: ``(H, W)`` of the texture.
        max_candidates: texel-triangle pairs tested at once (bounds memory: ~80 bytes each).

    Returns:
        ``face_index (H, W)`` int64, the covering triangle or -1, and ``barycentrics (H, W, 3)``
        float64 weights of the triangle's corners at the texel centre (zeros where uncovered).
    """
    height, width = resolution
    vt = np.asarray(vt, dtype=np.float64)
    ft = np.asarray(ft, dtype=np.int64)
    # Corners in continuous texel coordinates: x = u W (column), y = (1 - v) H (row).
    corners = np.stack([vt[ft][..., 0] * width, (1.0 - vt[ft][..., 1]) * height], axis=-1)  # (F, 3, 2)
    edge_1 = corners[:, 1] - corners[:, 0]
    edge_2 = corners[:, 2] - corners[:, 0]
    area = edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]
    # Texel centres c + 0.5 inside the bounding box: c from ceil(min - 0.5) to floor(max - 0.5).
    lo = np.ceil(corners.min(axis=1) - 0.5).astype(np.int64)
    hi = np.floor(corners.max(axis=1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    box = np.maximum(hi - lo + 1, 0)
    count = box[:, 0] * box[:, 1] * (np.abs(area) > 1e-12)

    face_index = np.full(height * width, -1, dtype=np.int64)
    barycentrics = np.zeros((height * width, 3), dtype=np.float64)
    best = np.full(height * width, -np.inf)
    ends = np.cumsum(count)
    group_start = 0
    while group_start < len(count):
        # Triangles whose candidates together stay under max_candidates (at least one).
        base = ends[group_start - 1] if group_start else 0
        group_stop = max(group_start + 1, int(np.searchsorted(ends, base + max_candidates, side="right")))
        faces = np.arange(group_start, group_stop)
        faces = faces[count[faces] > 0]
        group_start = group_stop
        if faces.size == 0:
            continue
        n = count[faces]
        face = np.repeat(faces, n)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        col = lo[face, 0] + offset % box[face, 0]
        row = lo[face, 1] + offset // box[face, 0]
        point = np.stack([col + 0.5, row + 0.5], axis=-1) - corners[face, 0]
        w1 = (point[:, 0] * edge_2[face, 1] - point[:, 1] * edge_2[face, 0]) / area[face]
        w2 = (edge_1[face, 0] * point[:, 1] - edge_1[face, 1] * point[:, 0]) / area[face]
        weights = np.stack([1.0 - w1 - w2, w1, w2], axis=-1)
        inside_margin = weights.min(axis=1)
        inside = inside_margin >= -1e-9
        texel = (row * width + col)[inside]
        face, weights, inside_margin = face[inside], weights[inside], inside_margin[inside]
        # Keep, per texel, the candidate deepest inside its triangle (ties: the later one).
        order = np.lexsort((inside_margin, texel))
        last = np.r_[texel[order][1:] != texel[order][:-1], True]
        winner = order[last]
        better = inside_margin[winner] > best[texel[winner]]
        winner = winner[better]
        face_index[texel[winner]] = face[winner]
        barycentrics[texel[winner]] = weights[winner]
        best[texel[winner]] = inside_margin[winner]
    return face_index.reshape(height, width), barycentrics.reshape(height, width, 3)
