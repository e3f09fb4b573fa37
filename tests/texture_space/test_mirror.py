"""Mirror correspondences on a generated symmetric surface with two UV layouts: one symmetric
about the texture's midline, one with the right half as a separate, shifted and flipped chart."""

from __future__ import annotations

import numpy as np
import pytest

from flamefit.texture_space.mirror import mirror_faces, mirror_texel_map, mirror_vertices
from flamefit.texture_space.uv_raster import rasterize_uv

QUADS = 8  # quads per half of the grid, across and down


def symmetric_surface():
    """A curved grid over x, y in [-1, 1], triangulated mirror-symmetrically about x = 0."""
    axis = np.linspace(-1.0, 1.0, 2 * QUADS + 1)
    x, y = np.meshgrid(axis, axis)
    vertices = np.stack([x.ravel(), y.ravel(), 0.3 * np.cos(1.2 * x.ravel()) + 0.1 * y.ravel() ** 2], axis=1)
    index = np.arange(len(vertices)).reshape(2 * QUADS + 1, 2 * QUADS + 1)
    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    left = np.arange(2 * QUADS)[None, :].repeat(2 * QUADS, 0) < QUADS  # diagonals mirror at x = 0
    first = np.where(left[..., None], np.stack([a, b, d], -1), np.stack([a, b, c], -1))
    second = np.where(left[..., None], np.stack([a, d, c], -1), np.stack([b, d, c], -1))
    faces = np.concatenate([first.reshape(-1, 3), second.reshape(-1, 3)])
    return vertices, faces


def midline_layout(vertices, faces):
    vt = 0.05 + 0.45 * (vertices[:, :2] + 1.0)
    return vt, faces.copy()


def two_chart_layout(vertices, faces):
    """Left half (x <= 0) at u in [0.05, 0.45]; right half as its own chart at u in [0.55, 0.95],
    reflected (u grows toward x = 0) and shifted down by 0.1 in v; the midline is a seam."""
    x, y = vertices[:, 0], vertices[:, 1]
    left_uv = np.stack([0.05 + 0.4 * (x + 1.0), 0.1 + 0.4 * (y + 1.0)], axis=1)
    right_uv = np.stack([0.55 + 0.4 * (1.0 - x), 0.0 + 0.4 * (y + 1.0)], axis=1)
    vt = np.concatenate([left_uv, right_uv])
    face_is_right = vertices[faces][:, :, 0].mean(axis=1) > 0
    ft = np.where(face_is_right[:, None], faces + len(vertices), faces)
    return vt, ft


def test_mirror_vertices_pairs_reflections_and_rejects_asymmetry():
    vertices, _ = symmetric_surface()
    mirror = mirror_vertices(vertices)
    np.testing.assert_allclose(vertices[mirror], vertices * [-1.0, 1.0, 1.0], atol=1e-12)
    np.testing.assert_array_equal(mirror[mirror], np.arange(len(vertices)))
    bent = vertices.copy()
    bent[3, 0] += 0.05
    with pytest.raises(ValueError, match="no mirror partner"):
        mirror_vertices(bent)


def test_mirror_faces_match_vertex_sets():
    vertices, faces = symmetric_surface()
    mirror = mirror_vertices(vertices)
    mirror_face, corner = mirror_faces(faces, mirror)
    assert (mirror_face >= 0).all()
    rows = np.arange(len(faces))[:, None]
    np.testing.assert_array_equal(faces[mirror_face[:, None], corner], mirror[faces[rows, [0, 1, 2]]])


def test_rasteriser_barycentrics_reproduce_texel_centres():
    vertices, faces = symmetric_surface()
    vt, ft = two_chart_layout(vertices, faces)
    face_index, bary = rasterize_uv(vt, ft, (48, 64), max_candidates=500)  # many small groups
    covered = face_index >= 0
    row, col = np.nonzero(covered)
    uv = np.einsum("nj,njk->nk", bary[covered], vt[ft[face_index[covered]]])
    np.testing.assert_allclose(uv[:, 0], (col + 0.5) / 64, atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], 1.0 - (row + 0.5) / 48, atol=1e-9)
    assert (bary[covered] >= -1e-9).all()
    # Both charts are 0.4 x 0.8 of the texture: about 2 * 0.32 of the texels are covered.
    assert abs(covered.mean() - 0.64) < 0.05


def test_midline_layout_mirror_is_column_flip_and_an_involution():
    vertices, faces = symmetric_surface()
    vt, ft = midline_layout(vertices, faces)
    size = 64
    mirror = mirror_texel_map(vertices, faces, vt, ft, size, mirror_vertices(vertices))
    valid = mirror >= 0
    assert valid.sum() > 0.75 * size * size
    row, col = np.nonzero(valid)
    mirror_row, mirror_col = np.divmod(mirror[valid], size)
    np.testing.assert_array_equal(mirror_row, row)
    np.testing.assert_array_equal(mirror_col, size - 1 - col)
    np.testing.assert_array_equal(mirror.reshape(-1)[mirror[valid]], np.flatnonzero(valid))


def test_two_chart_layout_mirror_crosses_charts():
    vertices, faces = symmetric_surface()
    vt, ft = two_chart_layout(vertices, faces)
    size = 80
    mirror = mirror_texel_map(vertices, faces, vt, ft, size, mirror_vertices(vertices))
    face_index, _ = rasterize_uv(vt, ft, (size, size))
    valid = mirror >= 0
    assert valid.sum() > 0.95 * (face_index >= 0).sum()
    row, col = np.nonzero(valid)
    mirror_row, mirror_col = np.divmod(mirror[valid], size)
    # Left chart u = 0.05 + 0.4 (x + 1) -> right chart u = 0.55 + 0.4 (1 + x) (x -> -x), v - 0.1.
    on_left = col < size // 2
    u_left = (col[on_left] + 0.5) / size
    expected_col = np.floor((u_left + 0.5) * size)
    expected_row = np.floor((1.0 - (1.0 - (row[on_left] + 0.5) / size - 0.1)) * size)
    assert np.abs(mirror_col[on_left] - expected_col).max() <= 1
    assert np.abs(mirror_row[on_left] - expected_row).max() <= 1
    involution = mirror.reshape(-1)[mirror[valid]]
    back_row, back_col = np.divmod(involution, size)
    ok = involution >= 0
    assert ok.mean() > 0.97
    assert np.maximum(np.abs(back_row[ok] - row[ok]), np.abs(back_col[ok] - col[ok])).max() <= 1
    assert (involution[ok] == np.flatnonzero(valid)[ok]).mean() > 0.9


def test_asymmetric_triangulation_falls_back_to_nearest_surface_point():
    vertices, faces = symmetric_surface()
    # Re-split every quad along the same diagonal: the mirror of a face is no longer a face.
    axis = 2 * QUADS + 1
    index = np.arange(axis * axis).reshape(axis, axis)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    mirror_vertex = mirror_vertices(vertices)
    mirror_face, _ = mirror_faces(faces, mirror_vertex)
    assert (mirror_face < 0).mean() > 0.9
    vt, ft = midline_layout(vertices, faces)
    size = 64
    mirror = mirror_texel_map(vertices, faces, vt, ft, size, mirror_vertex)
    valid = mirror >= 0
    assert valid.sum() > 0.75 * size * size
    row, col = np.nonzero(valid)
    mirror_row, mirror_col = np.divmod(mirror[valid], size)
    assert np.abs(mirror_row - row).max() <= 1 and np.abs(mirror_col - (size - 1 - col)).max() <= 1
    assert ((mirror_row == row) & (mirror_col == size - 1 - col)).mean() > 0.95
