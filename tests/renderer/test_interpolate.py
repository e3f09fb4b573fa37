"""The compact-pixel gather and scatter kernels of the interpolation module."""

from __future__ import annotations

import torch

from flamefit.renderer.interpolate import gather_corner_rows, scatter_channels


def test_scatter_channels_places_columns_and_fills_the_rest():
    values = torch.tensor([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]], requires_grad=True)  # (C=3, N=2)
    image = scatter_channels(values, torch.tensor([1, 4]), total=6, background=-1.0)
    assert image.shape == (6, 3)
    assert image[1].tolist() == [1.0, 10.0, 100.0] and image[4].tolist() == [2.0, 20.0, 200.0]
    assert (image[[0, 2, 3, 5]] == -1).all()
    image.sum().backward()
    assert (values.grad == 1).all()


def test_gather_corner_rows():
    table = torch.arange(12.0).view(2, 6)  # (C, R)
    ids = torch.tensor([[0, 5], [1, 4], [2, 3]])  # (3, N)
    rows = gather_corner_rows(table, ids)
    assert rows.shape == (2, 3, 2)
    assert rows[1, :, 0].tolist() == [6.0, 7.0, 8.0] and rows[0, :, 1].tolist() == [5.0, 4.0, 3.0]
