"""Landmarks on a head mesh seen from the front: ray hits and DECA's yaw-dependent contour table.

Used by every model this project builds in the FLAME format (the converted open model and the
procedural test head). Model space: metres, y up, +z toward the viewer.

The contour table has one row per yaw (DECA's layout: 0..39 degrees, then -1..-39) and one
column per contour level 0..16 (0 at the subject's right, -x; 8 the chin). Each level is a
horizontal slice of the face from its jaw-line point toward the midline; for a head turned by
yaw ``y`` (right-handed about +y), the far side's point is the slice point furthest out as an
orthographic camera looking down -z sees it (its silhouette), and the near side keeps the
jaw-line point.
"""

from __future__ import annotations

import numpy as np

MAX_YAW_DEG = 39
N_SLICE_SAMPLES = 64


def frontal_hits(points_xy: np.ndarray, vertices: np.ndarray, faces: np.ndarray, chunk: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Frontmost triangle hit by rays travelling along -z through ``points_xy (N, 2)``.

    Args:
        points_xy: model-space (x, y) of the rays.
        vertices: ``(V, 3)``; faces: ``(F, 3)`` the triangles to hit (e.g. skin only).

    Returns:
        ``(N,)`` row index into ``faces`` and ``(N, 3)`` barycentric coordinates; -1 where missed.
    """
    tri = vertices[faces]  # (F, 3, 3)
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    ok = np.abs(det) > 1e-14
    index = np.full(len(points_xy), -1)
    bary = np.zeros((len(points_xy), 3))
    for start in range(0, len(points_xy), chunk):
        q = points_xy[start : start + chunk, None, :]  # (n, 1, 2)
        w1 = ((q[..., 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (q[..., 1] - a[:, 1])) / np.where(ok, det, 1.0)
        w2 = ((b[:, 0] - a[:, 0]) * (q[..., 1] - a[:, 1]) - (q[..., 0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / np.where(ok, det, 1.0)
        w0 = 1.0 - w1 - w2
        inside = ok & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        z = w0 * tri[:, 0, 2] + w1 * tri[:, 1, 2] + w2 * tri[:, 2, 2]
        z = np.where(inside, z, -np.inf)
        best = np.argmax(z, axis=1)
        rows = np.arange(len(best))
        hit = np.isfinite(z[rows, best])
        index[start : start + chunk] = np.where(hit, best, -1)
        bary[start : start + chunk] = np.stack([w0[rows, best], w1[rows, best], w2[rows, best]], 1) * hit[:, None]
    return index, bary


def yaw_rows() -> np.ndarray:
    """``(79,)`` yaw in degrees of each row of DECA's dynamic table (0..39, then -1..-39)."""
    return np.concatenate([np.arange(0, MAX_YAW_DEG + 1), -np.arange(1, MAX_YAW_DEG + 1)])


def contour_table(jaw_xy: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                  reach: float = 0.92) -> tuple[np.ndarray, np.ndarray]:
    """``(79, 17)`` contour triangles (rows into ``faces``) and ``(79, 17, 3)`` barycentrics.

    Args:
        jaw_xy: ``(17, 2)`` model-space (x, y) of the frontal contour points 0..16.
        vertices: ``(V, 3)`` the neutral mesh; faces: ``(F, 3)`` the skin triangles to use.
        reach: how far toward the midline each slice runs (fraction of the point's |x|).

    Slice samples run from each level's jaw-line point (fraction 0) toward the midline; for
    each yaw the far side takes the sample that is outermost after the rotation.

    Raises:
        RuntimeError: a jaw-line point misses the skin seen from the front.
    """
    jaw = np.asarray(jaw_xy, dtype=np.float64)
    fractions = np.linspace(0.0, reach, N_SLICE_SAMPLES)
    samples = np.stack([jaw[:, None, 0] * (1.0 - fractions[None, :]), np.broadcast_to(jaw[:, None, 1], (17, N_SLICE_SAMPLES))], -1)
    hit, bary = frontal_hits(samples.reshape(-1, 2), vertices, faces)
    hit = hit.reshape(17, N_SLICE_SAMPLES)
    bary = bary.reshape(17, N_SLICE_SAMPLES, 3)
    if np.any(hit[:, 0] < 0):
        raise RuntimeError(f"jaw contour points {np.flatnonzero(hit[:, 0] < 0).tolist()} miss the skin seen from the front")
    points = np.einsum("lsk,lskc->lsc", bary, vertices[faces[np.maximum(hit, 0)]])
    valid = hit >= 0
    yaws = np.deg2rad(yaw_rows())
    out_f = np.empty((len(yaws), 17), dtype=np.int64)
    out_b = np.empty((len(yaws), 17, 3))
    side = np.sign(jaw[:, 0])  # -1 right, +1 left, 0 chin (x exactly 0)
    for row, yaw in enumerate(yaws):
        seen_x = points[..., 0] * np.cos(yaw) + points[..., 2] * np.sin(yaw)  # (17, S)
        far = side * np.sign(yaw) > 0
        outward = np.where(valid, side[:, None] * seen_x, -np.inf)
        pick = np.where(far, np.argmax(outward, axis=1), 0)
        levels = np.arange(17)
        out_f[row] = hit[levels, pick]
        out_b[row] = bary[levels, pick]
    return out_f, out_b
