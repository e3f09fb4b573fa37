"""Synthetic training faces: deterministic per seed, framed by the fit's crop rule, exact labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

R = 64


@pytest.fixture(scope="module")
def sampler():
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.regressor.synthetic_faces import SyntheticFaceSampler, background_bank

    scene = HeadScene.from_model_files(select_model(open_model=True))
    return SyntheticFaceSampler(scene, R, background_bank("cpu", tiles_per_image=1))


def test_a_batch_depends_only_on_its_seed(sampler):
    first = sampler.sample(4, torch.Generator().manual_seed(3))
    again = sampler.sample(4, torch.Generator().manual_seed(3))
    other = sampler.sample(4, torch.Generator().manual_seed(4))
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.truth.pose, again.truth.pose)
    assert not torch.equal(first.images, other.images)
    assert first.images.shape == (4, 3, R, R)
    assert float(first.images.min()) >= 0 and float(first.images.max()) <= 1


def test_faces_are_framed_by_the_fits_crop_rule_and_labels_are_exact(sampler):
    from flamefit.fitting.crop import DEFAULT_SCALE

    faces = sampler.sample(8, torch.Generator().manual_seed(0))
    # the truth reprojects onto the returned landmarks
    assert torch.allclose(sampler.scene.landmarks_px(faces.truth, R), faces.landmarks_px, atol=1e-3)
    points = faces.landmarks_px.numpy()
    extent = points.max(axis=1) - points.min(axis=1)
    side = DEFAULT_SCALE * extent.sum(axis=1) / 2
    centre = (points.max(axis=1) + points.min(axis=1)) / 2
    assert np.all(np.abs(side / R - 1) < 0.25)  # the crop rule, up to the +-5 % scale jitter
    assert np.all(np.abs(centre - R / 2) < 0.15 * R)
    assert float(np.median(np.abs(side / R - 1))) < 0.08


def test_poses_are_wide_and_expressions_within_the_models_range(sampler):
    params, yaw = sampler.draw_parameters(200, torch.Generator().manual_seed(1))
    assert float(yaw.abs().max()) > 75 and float(yaw.abs().max()) <= 90
    assert float((yaw.abs() >= 45).float().mean()) > 0.2
    low, high = sampler.scene.flame.expression_bounds
    assert float(params.expression.min()) >= low and float(params.expression.max()) <= high


def test_backgrounds_from_a_folder_and_a_clear_error_for_an_empty_one(tmp_path):
    import imageio.v3 as iio

    from flamefit.regressor.synthetic_faces import TILE, background_bank

    with pytest.raises(ValueError, match="no images found"):
        background_bank("cpu", tmp_path)
    iio.imwrite(tmp_path / "wall.png", np.full((300, 400, 3), 120, np.uint8))
    bank = background_bank("cpu", tmp_path, tiles_per_image=2)
    assert bank.shape == (2, 3, TILE, TILE)
    assert torch.allclose(bank, torch.full_like(bank, 120 / 255), atol=1e-3)
