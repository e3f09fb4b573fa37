"""FLAME_masks.pkl-style region files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from flamefit.flame.errors import ModelFileError
from flamefit.flame.vertex_masks import load_vertex_masks

REGIONS = {
    "face": np.array([0, 1, 2, 5], dtype=np.int64),
    "left_eyeball": np.array([7, 8], dtype=np.uint32),
    "scalp": np.arange(3, dtype=np.int32),
    "boundary": np.array([], dtype=np.int64),
}


def write_masks(path: Path, regions: dict) -> Path:
    path.write_bytes(pickle.dumps(regions, protocol=2).replace(b"numpy._core.", b"numpy.core."))
    return path


def test_python2_style_masks_load(tmp_path: Path) -> None:
    masks = load_vertex_masks(write_masks(tmp_path / "FLAME_masks.pkl", REGIONS), n_vertices=10)
    assert list(masks) == list(REGIONS)
    for name, indices in REGIONS.items():
        np.testing.assert_array_equal(masks[name], indices)
        assert masks[name].dtype == np.int64


def test_npz_and_boolean_masks(tmp_path: Path) -> None:
    path = tmp_path / "masks.npz"
    np.savez(path, lips=np.array([1, 3]), nose=np.arange(10) % 4 == 0)
    masks = load_vertex_masks(path, n_vertices=10)
    np.testing.assert_array_equal(masks["nose"], [0, 4, 8])
    np.testing.assert_array_equal(masks["lips"], [1, 3])


def test_index_out_of_range_and_bad_files(tmp_path: Path) -> None:
    path = write_masks(tmp_path / "FLAME_masks.pkl", {"face": np.array([0, 5023])})
    with pytest.raises(ModelFileError, match=r"FLAME_masks\.pkl: mask 'face' refers to vertex 5023 but the model has 5023 vertices"):
        load_vertex_masks(path, n_vertices=5023)
    negative = write_masks(tmp_path / "negative.pkl", {"neck": np.array([-1, 2])})
    with pytest.raises(ModelFileError, match=r"negative\.pkl: mask 'neck' holds the negative vertex index -1"):
        load_vertex_masks(negative)
    floats = write_masks(tmp_path / "floats.pkl", {"nose": np.array([0.5])})
    with pytest.raises(ModelFileError, match=r"floats\.pkl: mask 'nose' has float64 values"):
        load_vertex_masks(floats)
    listing = write_masks(tmp_path / "list.pkl", [1, 2])
    with pytest.raises(ModelFileError, match=r"list\.pkl: holds list, not a dict"):
        load_vertex_masks(listing)
    with pytest.raises(ModelFileError, match=r"FLAME_masks_missing\.pkl: file not found"):
        load_vertex_masks(tmp_path / "FLAME_masks_missing.pkl")
