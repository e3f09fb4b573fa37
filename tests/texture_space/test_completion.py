"""Completion of unseen texels on synthetic low-rank, left-right symmetric albedo maps: each
method against the mean-fill baseline on blobs of visible texels hidden from it."""

from __future__ import annotations

import numpy as np
import pytest

from flamefit.texture_space.completion import (
    complete_textures,
    fill_from_mirror,
    fill_low_rank,
    fill_with_mean,
    inpaint_unseen,
)
from flamefit.texture_space.evaluation import completion_errors, hide_blobs
from flamefit.texture_space.inpainting import diffusion_fill, opencv_fill
from flamefit.texture_space.synthetic import (
    blobby_confidence,
    column_flip_mirror_map,
    sample_low_rank_maps,
    synthetic_space,
)

SIZE, N_MAPS, RANK = 32, 40, 5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def symmetric_data():
    rng = np.random.default_rng(3)
    mean, basis = synthetic_space(SIZE, RANK, rng, symmetric=True)
    maps, _ = sample_low_rank_maps(mean, basis, N_MAPS, rng, noise=0.004)
    confidence = blobby_confidence(N_MAPS, SIZE, rng, unseen_fraction=0.3)
    return maps, confidence


@pytest.fixture(scope="module")
def errors(symmetric_data):
    maps, confidence = symmetric_data
    mirror = column_flip_mirror_map(SIZE)
    methods = {
        name: (lambda m, c, name=name: complete_textures(m, c, name, mirror_map=mirror, n_iterations=60))
        for name in ("mean", "symmetry", "pca", "inpaint", "combined")
    }
    return completion_errors(maps, confidence, methods, fraction=0.2, blob_size=2.0, seed=1)


def test_hidden_blobs_take_the_asked_fraction(symmetric_data):
    _, confidence = symmetric_data
    reduced, hidden = hide_blobs(confidence, 0.2, 2.0, seed=1)
    visible = confidence > 0
    assert not (hidden & ~visible).any()
    assert abs(hidden.sum() / visible.sum() - 0.2) < 0.01
    assert (reduced[hidden] == 0).all() and (reduced[~hidden] == confidence[~hidden]).all()
    # Blobby, not salt-and-pepper: most hidden texels have a hidden 4-neighbour on each axis.
    both = hidden[:, 1:-1, 1:-1] & (hidden[:, :-2, 1:-1] | hidden[:, 2:, 1:-1]) & (hidden[:, 1:-1, :-2] | hidden[:, 1:-1, 2:])
    assert both.sum() > 0.7 * hidden[:, 1:-1, 1:-1].sum()


def test_symmetry_beats_mean_fill_on_symmetric_maps(errors):
    assert errors["symmetry"] < 0.5 * errors["mean"]


def test_pca_imputation_beats_mean_fill_on_low_rank_maps(errors):
    assert errors["pca"] < 0.25 * errors["mean"]
    assert errors["pca"] < 0.02  # noise 0.004; the maps vary by ~0.08 per value


def test_combined_beats_mean_fill_and_inpainting_beats_nothing(errors, symmetric_data):
    maps, _ = symmetric_data
    assert errors["combined"] < 0.5 * errors["mean"]
    spread = float(np.sqrt(maps.var(axis=0).mean() + maps.mean(axis=(0, 1, 2)).var()))
    assert errors["inpaint"] < spread


def test_seen_texels_are_kept_and_output_complete(symmetric_data):
    maps, confidence = symmetric_data
    completed = complete_textures(maps, confidence, "combined", mirror_map=column_flip_mirror_map(SIZE), n_iterations=10)
    seen = confidence > 0
    np.testing.assert_array_equal(completed[seen], maps[seen])
    assert np.isfinite(completed).all() and completed.dtype == np.float32


def test_steps_report_what_they_filled(symmetric_data):
    maps, confidence = symmetric_data
    mirror = column_flip_mirror_map(SIZE)
    filled, weights = fill_from_mirror(maps, confidence, mirror, fill_confidence=0.5)
    mirror_conf = confidence.reshape(N_MAPS, -1)[:, mirror.reshape(-1)].reshape(confidence.shape)
    newly = (confidence == 0) & (mirror_conf > 0)
    np.testing.assert_allclose(weights[newly], 0.5 * mirror_conf[newly])
    np.testing.assert_array_equal(filled[newly], maps[:, :, ::-1][newly])
    assert ((weights == 0) == ((confidence == 0) & (mirror_conf == 0))).all()

    nobody = np.zeros_like(confidence)
    nobody[:, :, :4] = 1.0  # only the first 4 columns are ever seen
    filled, weights = fill_with_mean(maps, nobody)
    assert (weights[:, :, 4:] == 0).all() and (weights[:, :, :4] == 1).all()
    filled, weights = fill_low_rank(maps, nobody, n_iterations=3)
    assert (weights[:, :, 4:] == 0).all()


def test_low_rank_fill_writes_into_memory_map(symmetric_data, tmp_path):
    maps, confidence = symmetric_data
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=maps.shape)
    in_memory, _ = fill_low_rank(maps, confidence, n_iterations=5, chunk_mb=0.05)
    on_disk, _ = fill_low_rank(maps, confidence, n_iterations=5, chunk_mb=0.05, out=out)
    assert on_disk is out
    np.testing.assert_allclose(np.asarray(on_disk), in_memory, atol=1e-6)


def test_low_rank_fill_on_a_torch_device_equals_the_streaming_passes(symmetric_data):
    """The whole-stack torch EM that GPU builds use (run here on the CPU) imputes what the
    streaming NumPy passes impute, and keeps the same confidences."""
    maps, confidence = symmetric_data
    streamed, streamed_confidence = fill_low_rank(maps, confidence, n_iterations=30, chunk_mb=0.05)
    on_device, device_confidence = fill_low_rank(maps, confidence, n_iterations=30, device="cpu")
    np.testing.assert_allclose(on_device, streamed, atol=1e-5)
    np.testing.assert_array_equal(device_confidence, streamed_confidence)


def test_inpainting_methods_fill_smooth_holes():
    size = 32
    row, col = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.3 + 0.4 * row, 0.5 + 0.2 * col, 0.4 + 0.1 * row * col], axis=-1)[None].astype(np.float32)
    known = np.ones((1, size, size), dtype=bool)
    known[0, 10:18, 12:22] = False
    for filled in (diffusion_fill(image, known), opencv_fill(image, known, "telea"), opencv_fill(image, known, "ns")):
        assert np.abs(filled - image).max() < 0.03
        np.testing.assert_array_equal(filled[known], image[known])
    empty = diffusion_fill(image, np.zeros_like(known))
    assert (empty == 0).all()
    everything = inpaint_unseen(np.repeat(image, 2, axis=0), np.repeat(known, 2, axis=0).astype(np.float32))
    assert np.abs(everything - image).max() < 0.03


def test_bad_arguments_are_refused(symmetric_data):
    maps, confidence = symmetric_data
    with pytest.raises(ValueError, match="mirror_map"):
        complete_textures(maps, confidence, "symmetry")
    with pytest.raises(ValueError, match="unknown completion method"):
        complete_textures(maps, confidence, "magic")
    with pytest.raises(ValueError, match="confidence has shape"):
        complete_textures(maps, confidence[:, :-1], "mean")


def test_combined_into_memory_map_equals_in_memory(symmetric_data, tmp_path):
    maps, confidence = symmetric_data
    mirror = column_flip_mirror_map(SIZE)
    out = np.lib.format.open_memmap(tmp_path / "completed.npy", mode="w+", dtype=np.float32, shape=maps.shape)
    on_disk = complete_textures(maps, confidence, "combined", mirror_map=mirror, n_iterations=5, chunk_mb=0.05, out=out)
    in_memory = complete_textures(maps, confidence, "combined", mirror_map=mirror, n_iterations=5, chunk_mb=0.05)
    assert on_disk is out
    np.testing.assert_allclose(np.load(tmp_path / "completed.npy"), in_memory, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["completed.npy"]  # the scratch state is gone
    with pytest.raises(ValueError, match="share memory"):
        fill_low_rank(out, confidence, out=out)
