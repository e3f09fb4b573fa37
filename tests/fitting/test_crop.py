"""Square landmark crop: geometry, round trips, padding, paste-back and batched torch maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.fitting.crop import (apply_affine_torch, crop_box, crop_image, crop_transform,
                          stack_matrices)


def _square_landmarks(x0: float, y0: float, side: float) -> np.ndarray:
    """68 points spread over the square [x0, x0 + side] x [y0, y0 + side] touching all sides."""
    t = np.linspace(0, 1, 68)
    points = np.stack([x0 + side * t, y0 + side * (0.5 + 0.5 * np.sin(7 * t))], axis=1)
    points[0] = [x0, y0]
    points[-1] = [x0 + side, y0 + side]
    return points


def test_box_is_centred_and_scaled():
    box = crop_box(_square_landmarks(100, 50, 80), scale=1.25)
    assert np.allclose(box, [140 - 50, 90 - 50, 140 + 50, 90 + 50])


def test_round_trip_is_identity():
    landmarks = _square_landmarks(37.3, 12.9, 61.7)
    _, transform = crop_image(np.zeros((120, 140, 3), np.uint8), landmarks, resolution=224)
    points = np.random.default_rng(1).uniform(-50, 200, (100, 2))
    assert np.allclose(transform.to_image(transform.to_crop(points)), points, atol=1e-9)
    assert np.allclose(transform.matrix[:, :2] @ transform.inverse[:, :2], np.eye(2))


def test_known_points_land_where_expected():
    landmarks = _square_landmarks(100, 50, 80)  # box 90..190 x 40..140, side 100
    _, transform = crop_image(np.zeros((200, 300, 3), np.uint8), landmarks, resolution=200)
    centre = transform.to_crop(np.array([[140.0, 90.0]]))
    assert np.allclose(centre, [[99.5, 99.5]])  # the crop's centre, pixel-centre convention
    # The box's corners map to the crop's outer pixel edges.
    assert np.allclose(transform.to_crop(np.array([[90.0, 40.0], [190.0, 140.0]])),
                       [[-0.5, -0.5], [199.5, 199.5]])


def test_crop_samples_the_right_pixels():
    image = np.zeros((200, 300, 3), np.uint8)
    image[85:95, 135:145] = 255  # a white square centred on (139.5, 89.5)
    crop, transform = crop_image(image, _square_landmarks(100, 50, 80), resolution=200)
    assert crop.dtype == np.float32 and crop.shape == (200, 200, 3) and crop.max() <= 1
    rows, cols = np.nonzero(crop[..., 0] > 0.5)
    found = np.array([cols.mean(), rows.mean()])
    assert np.allclose(transform.to_image(found[None])[0], [139.5, 89.5], atol=0.6)


def test_crop_beyond_the_image_is_padded():
    image = np.full((100, 100, 3), 255, np.uint8)
    landmarks = _square_landmarks(-20, -20, 60)
    zeros, transform = crop_image(image, landmarks, resolution=64, border="zeros")
    edge, _ = crop_image(image, landmarks, resolution=64, border="edge")
    assert zeros[0, 0].max() == 0 and edge[0, 0].min() == 1.0
    inside = transform.inside_image_mask((100, 100))
    assert inside[0, 0] == 0 and inside[-1, -1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="border"):
        crop_image(image, landmarks, border="wrap")


def test_warp_to_image_pastes_back_in_place():
    image = np.random.default_rng(2).uniform(size=(150, 180, 3)).astype(np.float32)
    image = np.repeat(np.repeat(image[::6, ::6], 6, 0), 6, 1)[:150, :180]  # blocky, easy to warp
    crop, transform = crop_image(image, _square_landmarks(60, 40, 70), resolution=256)
    back = transform.warp_to_image(crop, (150, 180))
    covered = transform.warp_to_image(np.ones((256, 256), np.float32), (150, 180)) > 0.999
    assert covered.sum() > 5000
    assert np.median(np.abs(back - image)[covered]) < 0.02
    pasted = transform.paste_onto(image, np.ones_like(crop), np.ones(crop.shape[:2]))
    assert np.allclose(pasted[covered], 1.0) and np.allclose(pasted[~covered & (back.sum(2) == 0)],
                                                            image[~covered & (back.sum(2) == 0)])


def test_batched_torch_maps_match_numpy():
    transforms = [crop_transform(crop_box(_square_landmarks(x, y, s)), 224)
                  for x, y, s in [(10, 20, 50), (100, 5, 120)]]
    points = torch.rand(2, 68, 2, dtype=torch.float64) * 200
    mapped = apply_affine_torch(points, stack_matrices(transforms, dtype=torch.float64))
    for i, transform in enumerate(transforms):
        assert np.allclose(mapped[i].numpy(), transform.to_crop(points[i].numpy()))
    back = apply_affine_torch(mapped, stack_matrices(transforms, inverse=True, dtype=torch.float64))
    assert torch.allclose(back, points)
