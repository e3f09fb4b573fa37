"""Measures of texture spaces: compactness, generalisation to held-out maps, principal angles."""

from __future__ import annotations

import numpy as np
import pytest

from flamefit.texture_space.evaluation import blob_mask, compactness, generalisation, principal_angles
from flamefit.texture_space.pca import pca_gram, to_texture_space
from flamefit.texture_space.synthetic import blobby_confidence, sample_low_rank_maps, synthetic_space

SIZE, RANK = 32, 4


@pytest.fixture(scope="module")
def space_and_held_out():
    rng = np.random.default_rng(11)
    mean, basis = synthetic_space(SIZE, RANK, rng)
    train, _ = sample_low_rank_maps(mean, basis, 40, rng, noise=0.003)
    held_out, _ = sample_low_rank_maps(mean, basis, 6, rng, noise=0.003)
    confidence = blobby_confidence(6, SIZE, rng, unseen_fraction=0.4)
    return to_texture_space(pca_gram(train, 8)), held_out, confidence


def test_compactness_is_the_cumulative_variance_share():
    variance = np.array([4.0, 2.0, 1.0, 1.0])
    assert compactness(variance, 1) == pytest.approx(0.5)
    np.testing.assert_allclose(compactness(variance, np.arange(5)), [0.0, 0.5, 0.75, 0.875, 1.0])
    assert compactness(variance, 2, total_variance=12.0) == pytest.approx(0.5)


def test_generalisation_reconstructs_held_out_maps_from_visible_texels(space_and_held_out):
    space, held_out, confidence = space_and_held_out
    full = generalisation(space, held_out, confidence)
    assert full["rmse"] < 0.006  # noise 0.003 per value
    assert full["coefficients"].shape == (6, 8) and full["rmse_per_map"].shape == (6,)
    mean_only = generalisation(space, held_out, confidence, n_components=1)
    assert mean_only["rmse"] > 3 * full["rmse"]
    # The coefficients also predict the texels the fit did not see.
    predicted = space.mean + np.einsum("hwck,mk->mhwc", space.basis, full["coefficients"])
    unseen = confidence == 0
    assert np.sqrt(np.mean((predicted[unseen] - held_out[unseen]) ** 2)) < 0.01


def test_generalisation_ridge_shrinks_coefficients(space_and_held_out):
    space, held_out, confidence = space_and_held_out
    light = generalisation(space, held_out, confidence, ridge=1e-6)
    heavy = generalisation(space, held_out, confidence, ridge=100.0)
    assert np.linalg.norm(heavy["coefficients"]) < 0.5 * np.linalg.norm(light["coefficients"])
    assert heavy["rmse"] > light["rmse"]


def test_principal_angles_of_known_subspaces():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((300, 4)))
    np.testing.assert_allclose(principal_angles(q[:, :2], q[:, :2] @ rng.standard_normal((2, 2))), 0.0, atol=1e-7)
    np.testing.assert_allclose(principal_angles(q[:, :2], q[:, 2:]), np.pi / 2, atol=1e-7)
    tilted = np.cos(0.3) * q[:, 0] + np.sin(0.3) * q[:, 2]
    np.testing.assert_allclose(principal_angles(q[:, :2].reshape(10, 10, 3, 2), np.stack([tilted, q[:, 1]], 1)), [0.3, 0.0], atol=1e-7)


def test_blob_mask_respects_region_and_fraction():
    rng = np.random.default_rng(5)
    region = np.zeros((3, 40, 40), dtype=bool)
    region[:, :, :25] = True
    mask = blob_mask((3, 40, 40), 0.3, 3.0, rng, region=region)
    assert not (mask & ~region).any()
    np.testing.assert_allclose(mask.sum(axis=(1, 2)) / region.sum(axis=(1, 2)), 0.3, atol=1e-3)
    with pytest.raises(ValueError):
        blob_mask((1, 8, 8), 1.5, 2.0, rng)
