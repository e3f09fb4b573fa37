"""The shared per-triangle kernels: corner gather and the drawable-triangle rule."""

from __future__ import annotations

import pytest
import torch

from flamefit.renderer.triangles import batched_face_index, drawable_triangles, gather_corners, screen_area


def test_gather_corners_is_vertices_at_faces_batch_major():
    g = torch.Generator().manual_seed(0)
    vertices = torch.randn(3, 7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    faces = torch.randint(0, 7, (5, 3), generator=g)
    corners = gather_corners(vertices, faces)  # (C, 3, B * F)
    expected = vertices[:, faces].permute(3, 2, 0, 1).reshape(4, 3, 15)  # (C, 3, B * F)
    torch.testing.assert_close(corners, expected)
    corners.sum().backward()
    counts = torch.bincount(faces.reshape(-1), minlength=7).to(torch.float64)
    torch.testing.assert_close(vertices.grad, counts[None, :, None].expand(3, 7, 4))
    index = batched_face_index(faces, 3, 7)
    assert index.shape == (3, 15) and torch.equal(index[:, 5:10], faces.T + 7)
    assert torch.equal(batched_face_index(faces, 1, 7), faces.T)


def _corners(*triangles) -> torch.Tensor:
    """``(3, 3, T)`` corners from ``(3, 3)`` nested lists of (x, y, z) per corner."""
    return torch.tensor(triangles, dtype=torch.float64).permute(2, 1, 0)


def test_area_sign_is_front_facing_in_screen_space():
    # Counter-clockwise to a viewer of the y-down screen: (0,0) -> (0,1) -> (1,0) on screen.
    front = [[0, 0, 1], [0, 1, 1], [1, 0, 1]]
    back = [front[0], front[2], front[1]]
    area = screen_area(_corners(front, back))
    assert area[0] == 1.0 and area[1] == -1.0


@pytest.mark.parametrize("cull, perspective, expected", [
    (False, False, [True, True, False, False, False, True]),
    (True, False, [True, False, False, False, False, True]),
    (False, True, [True, True, False, False, False, False]),
    (True, True, [True, False, False, False, False, False]),
])
def test_drawable_rule(cull, perspective, expected):
    nan = float("nan")
    front = [[0, 0, 1], [0, 1, 1], [1, 0, 1]]
    triangles = _corners(
        front,
        [front[0], front[2], front[1]],  # back-facing
        [[0, 0, 1], [1, 1, 1], [2, 2, 1]],  # zero area
        [[0, 0, 1], [0, nan, 1], [1, 0, 1]],  # non-finite corner
        [[0, 0, 1], [0, 1, float("inf")], [1, 0, 1]],  # non-finite depth
        [[0, 0, 1], [0, 1, 1], [1, 0, -0.5]],  # a corner behind the camera
    )
    drawable, area = drawable_triangles(triangles, cull, perspective, near=1e-6)
    assert drawable.tolist() == expected
    assert area.shape == (6,)
