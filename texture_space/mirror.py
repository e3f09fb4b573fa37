"""Left-right mirror correspondences of a mesh and of its UV texels.

FLAME's model space has x across the face (y up, +z toward the viewer), so the mirror is the
reflection ``x -> -x``. :func:`mirror_vertices` pairs every vertex with the vertex nearest to
its reflection; :func:`mirror_texel_map` carries that pairing to the texture: each texel's
surface point (triangle + barycentrics, from :func:`~flamefit.texture_space.uv_raster.rasterize_uv`) is
moved to the mirrored triangle (the face made of the mirror vertices) with the same
barycentrics — or, where the triangulation is not mirror-symmetric and no such face exists, to
the nearest triangle of the mirrored point — and the texel holding that point's UV is its
mirror texel.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from flamefit.texture_space.uv_raster import rasterize_uv, uv_to_texel


def mirror_vertices(vertices: np.ndarray, tolerance: float | None = None, axis: int = 0) -> np.ndarray:
    """The vertex nearest to each vertex's reflection through the plane ``x = 0``.

    Args:
        vertices: ``(V, 3)`` positions in model space (metres).
        tolerance: largest accepted distance between a reflected vertex and its partner, in
            the units of ``vertices``; default 1e-3 of the bounding-box diagonal.
        axis: the coordinate negated by the reflection (0: x).

    Returns:
        ``(V,)`` int64 ``mirror`` with ``vertices[mirror[i]] ≈ reflect(vertices[i])``; vertices
        on the plane map to themselves.

    Raises:
        ValueError: some vertex has no partner within ``tolerance`` (the mesh is not
            symmetric, or ``axis`` is wrong); the message gives the count and the worst distance.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices have shape {vertices.shape}, expected (V, 3).")
    if tolerance is None:
        tolerance = 1e-3 * float(np.linalg.norm(np.ptp(vertices, axis=0)))
    reflected = vertices.copy()
    reflected[:, axis] *= -1.0
    distance, mirror = cKDTree(vertices).query(reflected)
    unmatched = distance > tolerance
    if unmatched.any():
        raise ValueError(
            f"{int(unmatched.sum())} of {len(vertices)} vertices have no mirror partner within "
            f"{tolerance:.3g} (worst {distance.max():.3g}, vertex {int(distance.argmax())}); the mesh is not "
            f"symmetric about coordinate {axis} = 0, or pass a larger tolerance."
        )
    return mirror.astype(np.int64)


def mirror_faces(faces: np.ndarray, mirror_vertex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face made of the mirror vertices of each face, and its corner order.

    Args:
        faces: ``(F, 3)`` vertex indices.
        mirror_vertex: ``(V,)`` from :func:`mirror_vertices`.

    Returns:
        ``mirror_face (F,)`` int64, the face with vertex set ``{mirror[a], mirror[b],
        mirror[c]}`` or -1 where the mesh has none, and ``corner (F, 3)`` int64: corner ``j`` of
        face ``f`` corresponds to corner ``corner[f, j]`` of ``mirror_face[f]``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    n_vertices = int(max(faces.max(initial=0), mirror_vertex.shape[0] - 1)) + 1

    def key(triples: np.ndarray) -> np.ndarray:
        ordered = np.sort(triples, axis=1)
        return (ordered[:, 0] * n_vertices + ordered[:, 1]) * n_vertices + ordered[:, 2]

    face_keys = key(faces)
    order = np.argsort(face_keys)
    mirrored = mirror_vertex[faces]
    wanted = key(mirrored)
    position = np.clip(np.searchsorted(face_keys[order], wanted), 0, len(faces) - 1)
    mirror_face = np.where(face_keys[order][position] == wanted, order[position], -1)
    # Corner j of f (vertex faces[f, j]) sits at the corner of g holding mirror[faces[f, j]].
    target = faces[np.maximum(mirror_face, 0)]
    corner = (target[:, None, :] == mirrored[:, :, None]).argmax(axis=2)
    return mirror_face, corner


def nearest_surface_points(
    vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, candidates: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The triangle nearest to each point and the barycentrics of the point's foot on it.

    Candidates are the ``candidates`` triangles with the nearest centroids; on each the point
    is projected onto the plane, its barycentrics clamped to the triangle (clipped at 0,
    renormalised), and the candidate whose clamped point is closest wins. Exact for points on
    the surface (the use here), a close approximation off it.

    Args:
        vertices: ``(V, 3)``; faces: ``(F, 3)``; points: ``(P, 3)``, all in model space.

    Returns:
        ``face (P,)`` int64 and ``barycentrics (P, 3)`` float64 (non-negative, summing to 1).
    """
    corners = vertices[faces]  # (F, 3, 3)
    count = min(candidates, len(faces))
    _, nearest = cKDTree(corners.mean(axis=1)).query(points, k=count)
    nearest = nearest.reshape(len(points), count)
    a, b, c = (corners[nearest, j] for j in range(3))  # (P, k, 3)
    e0, e1, to_point = b - a, c - a, points[:, None, :] - a
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (to_point * e0).sum(-1), (to_point * e1).sum(-1)
    denominator = np.where(np.abs(d00 * d11 - d01**2) > 1e-30, d00 * d11 - d01**2, 1e-30)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    weights = np.clip(np.stack([1.0 - v - w, v, w], axis=-1), 0.0, None)
    weights /= np.maximum(weights.sum(axis=-1, keepdims=True), 1e-30)
    foot = weights[..., :1] * a + weights[..., 1:2] * b + weights[..., 2:] * c
    best = np.linalg.norm(foot - points[:, None, :], axis=-1).argmin(axis=1)
    rows = np.arange(len(points))
    return nearest[rows, best].astype(np.int64), weights[rows, best]


def mirror_texel_map(
    vertices: np.ndarray,
    faces: np.ndarray,
    vt: np.ndarray,
    ft: np.ndarray,
    resolution: int | tuple[int, int],
    mirror_vertex: np.ndarray,
) -> np.ndarray:
    """For each texel, the texel showing the mirror image of its surface point.

    Args:
        vertices: ``(V, 3)`` model-space positions (used to check that ``mirror_vertex`` fits).
        faces: ``(F, 3)`` vertex indices.
        vt: ``(T, 2)`` UV coordinates (OBJ convention, v up).
        ft: ``(F, 3)`` UV indices per face corner.
        resolution: ``H`` (square) or ``(H, W)`` of the texture.
        mirror_vertex: ``(V,)`` from :func:`mirror_vertices`.

    Returns:
        ``(H, W)`` int64 flat texel index ``row * W + col`` of the mirror texel, or -1 where
        the texel is not covered by the UV layout or the mirrored point falls on an uncovered
        texel. Faces whose mirror vertices form a face of the mesh use it (exact); the others
        (a triangulation that is not mirror-symmetric) find the mirrored point's nearest
        triangle (:func:`nearest_surface_points`). ``maps.reshape(N, H * W, 3)[:, m]`` with ``m`` the
        valid entries reads the mirrored colours.
    """
    resolution = (resolution, resolution) if np.isscalar(resolution) else tuple(resolution)
    faces = np.asarray(faces, dtype=np.int64)
    ft = np.asarray(ft, dtype=np.int64)
    mirror_vertex = np.asarray(mirror_vertex, dtype=np.int64)
    if mirror_vertex.shape != (len(vertices),):
        raise ValueError(f"mirror_vertex has shape {mirror_vertex.shape}, expected ({len(vertices)},).")
    if faces.shape != ft.shape:
        raise ValueError(f"faces {faces.shape} and ft {ft.shape} must both be (F, 3).")
    face_index, barycentrics = rasterize_uv(vt, ft, resolution)
    mirror_face, corner = mirror_faces(faces, mirror_vertex)

    vertices = np.asarray(vertices, dtype=np.float64)
    vt = np.asarray(vt, dtype=np.float64)
    covered = face_index >= 0
    face = face_index[covered]
    weights = barycentrics[covered]
    target = mirror_face[face]
    # Where the mirror face exists: same barycentrics on it, corner j of f -> corner[f, j] of g.
    target_weights = np.zeros_like(weights)
    np.put_along_axis(target_weights, corner[face], weights, axis=1)
    # Elsewhere (a triangulation that is not mirror-symmetric): the mirrored point, i.e. the
    # same barycentrics over the mirror vertices, projected onto the nearest triangle.
    lost = target < 0
    if lost.any():
        mirrored_points = np.einsum("nj,njk->nk", weights[lost], vertices[mirror_vertex[faces[face[lost]]]])
        target[lost], target_weights[lost] = nearest_surface_points(vertices, faces, mirrored_points)
    uv = np.einsum("nj,njk->nk", target_weights, vt[ft[target]])
    row, col = uv_to_texel(uv, resolution)
    flat = row * resolution[1] + col
    valid = covered.reshape(-1)[flat]
    mirror_map = np.full(resolution, -1, dtype=np.int64)
    mirror_map[covered] = np.where(valid, flat, -1)
    return mirror_map
