"""Streaming PCA of UV maps: subspace recovery, agreement with a dense SVD, unit-variance
coefficients, memory-mapped input, and the saved space in the official layout."""

from __future__ import annotations

import numpy as np
import pytest

from flamefit.flame.texture_space_io import load_texture_space, save_texture_space
from flamefit.texture_space.evaluation import compactness, principal_angles
from flamefit.texture_space.pca import pca_gram, pca_randomized, project_maps, reconstruct_maps, to_texture_space
from flamefit.texture_space.synthetic import sample_low_rank_maps, synthetic_space, wave_texel_source
from flamefit.texture_space.texel_source import as_texel_source, block_ranges, write_map_stack

RESOLUTION, RANK, N_MAPS = 32, 5, 40


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def low_rank_data():
    rng = np.random.default_rng(7)
    mean, basis = synthetic_space(RESOLUTION, RANK, rng)
    maps, coefficients = sample_low_rank_maps(mean, basis, N_MAPS, rng, noise=0.003)
    return mean, basis, maps


def dense_pca(maps: np.ndarray, k: int):
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    _, singular, rows = np.linalg.svd(centred, full_matrices=False)
    return singular[:k] ** 2 / (len(maps) - 1), rows[:k]


@pytest.mark.parametrize("pca", [pca_gram, pca_randomized])
def test_recovers_true_subspace_and_matches_dense_svd(low_rank_data, pca):
    mean, basis, maps = low_rank_data
    # Small chunks force many blocks (the streaming path), not one in-memory product.
    result = pca(maps, RANK + 3, chunk_mb=0.05)
    assert len(block_ranges(RESOLUTION**2 * 3, N_MAPS, 0.05)) > 10
    angles = principal_angles(result.basis[..., :RANK], basis)
    assert np.degrees(angles.max()) < 2.0  # noise 0.003 vs smallest component RMS 0.025
    variance, rows = dense_pca(maps, RANK)
    np.testing.assert_allclose(result.explained_variance[:RANK], variance, rtol=1e-6)
    unit = result.basis.reshape(-1, result.n_components)[:, :RANK] / np.sqrt(variance)
    np.testing.assert_allclose(np.abs(np.sum(unit * rows.T, axis=0)), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.mean, maps.mean(axis=0), atol=1e-6)


def test_gram_equals_dense_svd_on_all_components(low_rank_data):
    _, _, maps = low_rank_data
    result = pca_gram(maps, 100, chunk_mb=0.05)
    assert result.n_components == N_MAPS - 1
    variance, _ = dense_pca(maps, N_MAPS - 1)
    np.testing.assert_allclose(result.explained_variance, variance, rtol=1e-8)
    np.testing.assert_allclose(result.explained_variance_ratio.sum(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(compactness(result.explained_variance, N_MAPS - 1, result.total_variance), 1.0)
    assert compactness(result.explained_variance_ratio, RANK, 1.0) > 0.99


@pytest.mark.parametrize("pca", [pca_gram, pca_randomized])
def test_coefficients_have_unit_variance(low_rank_data, pca):
    _, _, maps = low_rank_data
    result = pca(maps, RANK)
    projected = project_maps(result.mean, result.basis, maps)
    np.testing.assert_allclose(projected.var(axis=0, ddof=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(projected, result.coefficients, atol=1e-3)
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-4)


def test_memory_mapped_stack_gives_in_memory_result(low_rank_data, tmp_path):
    _, _, maps = low_rank_data
    path = write_map_stack(tmp_path / "maps.npy", (maps[i : i + 7] for i in range(0, N_MAPS, 7)), N_MAPS, (RESOLUTION, RESOLUTION))
    on_disk = np.load(path, mmap_mode="r")
    assert isinstance(on_disk, np.memmap)
    for pca in (pca_gram, pca_randomized):
        in_memory = pca(maps, RANK, chunk_mb=0.1)
        streamed = pca(on_disk, RANK, chunk_mb=0.1)
        np.testing.assert_array_equal(streamed.basis, in_memory.basis)
        np.testing.assert_array_equal(streamed.explained_variance, in_memory.explained_variance)


def test_basis_written_into_memory_map_and_uint8_stack(low_rank_data, tmp_path):
    _, _, maps = low_rank_data
    path = write_map_stack(tmp_path / "maps8.npy", [maps], N_MAPS, (RESOLUTION, RESOLUTION), dtype=np.uint8)
    stack = np.load(path, mmap_mode="r")
    assert stack.dtype == np.uint8
    out = np.lib.format.open_memmap(tmp_path / "basis.npy", mode="w+", dtype=np.float32, shape=(RESOLUTION, RESOLUTION, 3, RANK))
    result = pca_gram(stack, RANK, basis_out=out)
    assert np.shares_memory(result.basis, out)
    reference = pca_gram(np.asarray(stack, dtype=np.float64) / 255.0, RANK)
    np.testing.assert_allclose(np.load(tmp_path / "basis.npy"), reference.basis, atol=1e-5)


def test_generated_source_blocks_are_consistent():
    source = wave_texel_source(6, 16, rank=4)
    whole = source.read(0, source.n_values, np.dtype(np.float64))
    parts = np.concatenate([source.read(a, b, np.dtype(np.float64)) for a, b in block_ranges(source.n_values, 6, 0.002)], axis=1)
    np.testing.assert_array_equal(whole, parts)
    result = pca_randomized(source, 4, chunk_mb=0.01)
    reference = pca_gram(whole.reshape(6, 16, 16, 3), 4)
    np.testing.assert_allclose(result.explained_variance, reference.explained_variance, rtol=1e-6)


def test_saved_space_loads_with_numpy_in_official_layout(low_rank_data, tmp_path):
    _, _, maps = low_rank_data
    result = pca_gram(maps, RANK)
    space = to_texture_space(result, round=1)
    path = save_texture_space(tmp_path / "space.npz", space.mean, space.basis, metadata=space.metadata)
    with np.load(path, allow_pickle=False) as raw:
        assert raw["mean"].shape == (RESOLUTION, RESOLUTION, 3)
        assert raw["tex_dir"].shape == (RESOLUTION, RESOLUTION, 3, RANK)
        # Official layout: BGR, 0-255.
        np.testing.assert_allclose(raw["mean"], result.mean[..., ::-1] * 255, rtol=1e-6)
        coefficients = result.coefficients[:3]
        bgr = raw["mean"] + np.einsum("hwck,nk->nhwc", raw["tex_dir"], coefficients)
        np.testing.assert_allclose(bgr[..., ::-1] / 255.0, reconstruct_maps(result.mean, result.basis, coefficients), atol=1e-5)
        np.testing.assert_allclose(bgr[..., ::-1] / 255.0, maps[:3], atol=0.02)
        assert int(raw["meta_n_photos"]) == N_MAPS
    loaded = load_texture_space(path)
    np.testing.assert_allclose(loaded.basis, result.basis, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(loaded.metadata["explained_variance"], result.explained_variance)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="N, H, W, 3"):
        as_texel_source(np.zeros((4, 8, 8)))
    with pytest.raises(ValueError, match="at least 2"):
        pca_gram(np.zeros((1, 8, 8, 3)), 2)
    with pytest.raises(TypeError, match="uint8"):
        as_texel_source(np.zeros((2, 8, 8, 3), dtype=np.int32))
