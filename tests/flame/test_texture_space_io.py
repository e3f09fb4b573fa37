"""Texture spaces in the FLAME_texture.npz and FLAME_albedo_from_BFM.npz layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flamefit.flame.errors import ModelFileError
from flamefit.flame.texture_space_io import load_texture_space, save_texture_space

H, K = 8, 3


def rgb_space(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.random((H, H, 3)).astype(np.float32)
    basis = (rng.normal(size=(H, H, 3, K)) * 0.1).astype(np.float32)
    return mean, basis


def test_save_load_round_trip_is_bgr_0_255_on_disk(tmp_path: Path) -> None:
    mean, basis = rgb_space()
    vt = np.random.default_rng(1).random((10, 2))
    ft = np.array([[0, 1, 2], [2, 3, 9]])
    path = save_texture_space(
        tmp_path / "space.npz", mean, basis, vt=vt, ft=ft,
        metadata={"n_photos": 12, "explained_variance": np.array([0.5, 0.3, 0.1]), "round": 2, "name": "ours"},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.npz"]
    with np.load(path, allow_pickle=False) as raw:
        assert raw["mean"].dtype == np.float32 and raw["tex_dir"].shape == (H, H, 3, K)
        np.testing.assert_allclose(raw["mean"][..., 0], mean[..., 2] * 255, rtol=1e-6)
        np.testing.assert_allclose(raw["mean"][..., 2], mean[..., 0] * 255, rtol=1e-6)
        np.testing.assert_allclose(raw["tex_dir"][:, :, 0, 1], basis[:, :, 2, 1] * 255, rtol=1e-6)
    space = load_texture_space(path)
    np.testing.assert_allclose(space.mean, mean, atol=1e-6)
    np.testing.assert_allclose(space.basis, basis, atol=1e-6)
    assert space.mean.dtype == np.float32 and space.basis.dtype == np.float32
    np.testing.assert_array_equal(space.vt, vt)
    np.testing.assert_array_equal(space.ft, ft)
    assert space.metadata["n_photos"] == 12 and space.metadata["round"] == 2 and space.metadata["name"] == "ours"
    np.testing.assert_array_equal(space.metadata["explained_variance"], [0.5, 0.3, 0.1])
    assert (space.n_components, space.resolution) == (K, H)


def test_official_flame_texture_layout(tmp_path: Path) -> None:
    mean, basis = rgb_space(2)
    path = tmp_path / "FLAME_texture.npz"
    np.savez(path, mean=mean[..., ::-1] * 255.0, tex_dir=basis[:, :, ::-1] * 255.0, vt=np.zeros((4, 2)), ft=np.zeros((2, 3), np.int32))
    space = load_texture_space(path)
    np.testing.assert_allclose(space.mean, mean, atol=1e-5)
    np.testing.assert_allclose(space.basis, basis, atol=1e-5)
    assert space.metadata == {}


def test_bfm_albedo_layout(tmp_path: Path) -> None:
    mean, basis = rgb_space(3)
    path = tmp_path / "FLAME_albedo_from_BFM.npz"
    np.savez(path, MU=mean[..., ::-1].reshape(-1), PC=basis[:, :, ::-1].reshape(-1, K), specMU=np.zeros(H * H * 3))
    space = load_texture_space(path)
    np.testing.assert_allclose(space.mean, mean, atol=1e-6)
    np.testing.assert_allclose(space.basis, basis, atol=1e-6)
    assert space.vt is None and "specMU" in space.metadata


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"mean": np.zeros((H, H, 3))}, r"has keys \['mean'\], but a texture space needs 'mean' and 'tex_dir'"),
        ({"mean": np.zeros((H, H, 3)), "tex_dir": np.zeros((H, H + 1, 3, K))}, r"tex_dir has shape \(8, 9, 3, 3\), expected \(8, 8, 3, 'K'\)"),
        ({"mean": np.zeros((H, H)), "tex_dir": np.zeros((H, H, 3, K))}, r"mean has shape \(8, 8\), expected \(H, W, 3\)"),
        ({"MU": np.zeros(H * H * 3), "PC": np.zeros((H * H * 3 - 3, K))}, r"PC has shape \(189, 3\), expected \(192, K\)"),
        ({"MU": np.zeros(50 * 3), "PC": np.zeros((150, K))}, r"MU has 150 values, not 3 \* H \* H"),
        ({"mean": np.full((H, H, 3), np.nan), "tex_dir": np.zeros((H, H, 3, K))}, "mean or basis holds NaN or infinite values"),
        ({"mean": np.zeros((H, H, 3)), "tex_dir": np.zeros((H, H, 3, K)), "vt": np.zeros((3, 2)), "ft": np.array([[0, 1, 5]])}, "ft indexes texture coordinate 5 but vt has only 3"),
    ],
)
def test_bad_texture_files(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "FLAME_texture.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"FLAME_texture\.npz: " + message):
        load_texture_space(path)


def test_unreadable_and_unsaveable(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"FLAME_texture\.npz: file not found"):
        load_texture_space(tmp_path / "FLAME_texture.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mean=np.array([{"a": 1}], dtype=object), tex_dir=np.zeros(1))
    with pytest.raises(ModelFileError, match=r"pickled\.npz: holds pickled objects"):
        load_texture_space(pickled)
    cut = tmp_path / "cut.npz"
    mean, basis = rgb_space()
    save_texture_space(cut, mean, basis)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"cut\.npz: is not a readable \.npz"):
        load_texture_space(cut)
    with pytest.raises(ModelFileError, match=r"out\.npz: basis has shape \(8, 8, 3\)"):
        save_texture_space(tmp_path / "out.npz", mean, basis[..., 0])
    with pytest.raises(ModelFileError, match=r"out\.npz: metadata entry 'bad' \(dict\) cannot be stored without pickle"):
        save_texture_space(tmp_path / "out.npz", mean, basis, metadata={"bad": {"a": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npz", "pickled.npz"]
