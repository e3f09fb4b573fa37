"""Pixel-index <-> screen coordinates, and resizing in pixel-index coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.renderer.pixel_frames import (
    index_to_screen,
    resize_index,
    resize_index_matrix,
    screen_to_index,
)
from flamefit.renderer.rasterize import rasterize


def test_numpy_and_torch_round_trip():
    points = np.array([[0.0, 0.0], [3.0, 7.25]])
    np.testing.assert_array_equal(index_to_screen(points), points + 0.5)
    np.testing.assert_array_equal(screen_to_index(index_to_screen(points)), points)
    listed = index_to_screen([[1, 2]])
    assert isinstance(listed, np.ndarray) and listed.dtype == np.float64
    tensor = torch.tensor(points, dtype=torch.float32, requires_grad=True)
    screen = index_to_screen(tensor)
    assert isinstance(screen, torch.Tensor) and screen.dtype == torch.float32
    screen.sum().backward()
    torch.testing.assert_close(tensor.grad, torch.ones_like(tensor))
    torch.testing.assert_close(screen_to_index(screen), tensor)


def test_pixel_index_is_the_rasterisers_pixel():
    """A tiny triangle around screen point index_to_screen((j, i)) covers exactly pixel (i, j)."""
    i, j = 3, 5
    centre = index_to_screen(torch.tensor([float(j), float(i)], dtype=torch.float64))
    offsets = torch.tensor([[-0.2, -0.2], [0.2, -0.2], [0.0, 0.2]], dtype=torch.float64)
    corners = torch.cat([centre + offsets, torch.zeros(3, 1, dtype=torch.float64)], dim=1)[None]
    fragments = rasterize(corners, torch.tensor([[0, 1, 2]]), (8, 8))
    assert fragments.mask.nonzero().tolist() == [[0, i, j]]


@pytest.mark.parametrize("factor", [0.5, 2.0, 0.3])
def test_resize_maps_outer_edges_and_matches_its_matrix(factor):
    width = 10
    edges = np.array([[-0.5, -0.5], [width - 0.5, width - 0.5]])  # the image's outer edges
    np.testing.assert_allclose(resize_index(edges, factor), [[-0.5, -0.5], [width * factor - 0.5] * 2])
    points = np.random.default_rng(0).uniform(-1, 11, size=(5, 2))
    homogeneous = np.c_[points, np.ones(5)] @ resize_index_matrix(factor).T
    np.testing.assert_allclose(homogeneous[:, :2], resize_index(points, factor), atol=1e-12)
    np.testing.assert_allclose(resize_index(resize_index(points, factor), 1.0 / factor), points, atol=1e-12)
