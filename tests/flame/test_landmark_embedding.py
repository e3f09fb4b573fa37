"""Landmark embeddings in DECA's and RingNet's layouts, written here, load to the same result."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flamefit.flame.errors import ModelFileError
from flamefit.flame.landmark_embedding import load_landmark_embedding

N_FACES = 9976


def embedding_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "static_faces": rng.integers(0, N_FACES, size=51),
        "static_bary": rng.dirichlet(np.ones(3), size=51),
        "dynamic_faces": rng.integers(0, N_FACES, size=(79, 17)),
        "dynamic_bary": rng.dirichlet(np.ones(3), size=(79, 17)),
    }


def write_deca(path: Path, arrays: dict[str, np.ndarray], **overrides: Any) -> Path:
    """DECA's layout: dynamic tables as pickled torch tensors, full set as (1, 68[, 3])."""
    full_faces = np.concatenate([arrays["dynamic_faces"][0], arrays["static_faces"]])
    full_bary = np.concatenate([arrays["dynamic_bary"][0], arrays["static_bary"]])
    content: dict[str, Any] = {
        "static_lmk_faces_idx": arrays["static_faces"],
        "static_lmk_bary_coords": arrays["static_bary"],
        "dynamic_lmk_faces_idx": torch.from_numpy(arrays["dynamic_faces"]).long(),
        "dynamic_lmk_bary_coords": torch.from_numpy(arrays["dynamic_bary"]).float(),
        "full_lmk_faces_idx": full_faces[None],
        "full_lmk_bary_coords": full_bary[None],
    }
    content.update(overrides)
    np.save(path, content)
    return path


def write_ringnet(folder: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """The pair: a Python-2-style static pickle and a dynamic ``.npy`` dict."""
    static = folder / "flame_static_embedding.pkl"
    payload = pickle.dumps({"lmk_face_idx": arrays["static_faces"].astype(np.uint32), "lmk_b_coords": arrays["static_bary"]}, protocol=2)
    static.write_bytes(payload.replace(b"numpy._core.", b"numpy.core."))
    dynamic = folder / "flame_dynamic_embedding.npy"
    np.save(dynamic, {"lmk_face_idx": arrays["dynamic_faces"], "lmk_b_coords": arrays["dynamic_bary"]})
    return static, dynamic


def assert_same(a: Any, b: Any) -> None:
    for name in ("static_faces", "dynamic_faces", "full_faces"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == np.int64
    for name in ("static_bary", "dynamic_bary", "full_bary"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-7)
        assert getattr(a, name).dtype == np.float64


def test_deca_and_ringnet_layouts_give_the_same_embedding(tmp_path: Path) -> None:
    arrays = embedding_arrays()
    deca = load_landmark_embedding(write_deca(tmp_path / "landmark_embedding.npy", arrays), n_faces=N_FACES)
    static, dynamic = write_ringnet(tmp_path, arrays)
    from_static = load_landmark_embedding(static, n_faces=N_FACES)
    from_dynamic = load_landmark_embedding(dynamic, n_faces=N_FACES)
    assert_same(deca, from_static)
    assert_same(from_static, from_dynamic)
    assert deca.static_faces.shape == (51,) and deca.full_faces.shape == (68,) and deca.full_bary.shape == (68, 3)
    assert deca.dynamic_bary.shape == (79, 17, 3)
    np.testing.assert_array_equal(deca.full_faces[:17], arrays["dynamic_faces"][0])
    assert "flame_static_embedding.pkl" in from_dynamic.source and "flame_dynamic_embedding.npy" in from_dynamic.source


def test_ringnet_partner_given_explicitly(tmp_path: Path) -> None:
    arrays = embedding_arrays(seed=1)
    static, dynamic = write_ringnet(tmp_path, arrays)
    moved = tmp_path / "elsewhere_dynamic.npy"
    dynamic.rename(moved)
    with pytest.raises(ModelFileError, match=r"flame_dynamic_embedding\.npy: file not found; flame_static_embedding\.pkl needs its partner"):
        load_landmark_embedding(static)
    embedding = load_landmark_embedding(static, dynamic_path=moved)
    np.testing.assert_array_equal(embedding.dynamic_faces, arrays["dynamic_faces"])


def test_face_index_beyond_mesh_is_named(tmp_path: Path) -> None:
    arrays = embedding_arrays()
    arrays["static_faces"][7] = 10210
    path = write_deca(tmp_path / "landmark_embedding.npy", arrays)
    with pytest.raises(
        ModelFileError,
        match=r"landmark_embedding\.npy: static face index 10210 exceeds the mesh's 9976 faces; is this the embedding of another model\?",
    ):
        load_landmark_embedding(path, n_faces=N_FACES)
    assert load_landmark_embedding(path).static_faces[7] == 10210


def test_bad_barycentric_coordinates(tmp_path: Path) -> None:
    arrays = embedding_arrays()
    arrays["static_bary"][3] = [0.5, 0.5, 0.5]
    with pytest.raises(ModelFileError, match=r"landmark_embedding\.npy: static barycentric coordinates of landmark \(3,\) sum to 1\.5000"):
        load_landmark_embedding(write_deca(tmp_path / "landmark_embedding.npy", arrays))
    arrays = embedding_arrays()
    arrays["dynamic_bary"][5, 2] = [1.5, -0.5, 0.0]
    static, _ = write_ringnet(tmp_path, arrays)
    with pytest.raises(ModelFileError, match=r"flame_dynamic_embedding\.npy: dynamic barycentric coordinates include -0\.5000 < 0"):
        load_landmark_embedding(static)


def test_wrong_shapes_and_wrong_files(tmp_path: Path) -> None:
    arrays = embedding_arrays()
    path = write_deca(tmp_path / "landmark_embedding.npy", arrays, dynamic_lmk_faces_idx=torch.zeros(78, 17, dtype=torch.long))
    with pytest.raises(ModelFileError, match=r"landmark_embedding\.npy: dynamic face indices have shape \(78, 17\), expected \(79, 17\)"):
        load_landmark_embedding(path)
    other = tmp_path / "other.npy"
    np.save(other, {"lmk": np.zeros(3)})
    with pytest.raises(ModelFileError, match=r"other\.npy: has keys \['lmk'\], neither DECA's"):
        load_landmark_embedding(other)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((51, 3)))
    with pytest.raises(ModelFileError, match=r"plain\.npy: holds a ndarray, not a dict"):
        load_landmark_embedding(plain)
    with pytest.raises(ModelFileError, match=r"missing\.npy: file not found"):
        load_landmark_embedding(tmp_path / "missing.npy")
    truncated = tmp_path / "landmark_embedding_cut.npy"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelFileError, match=r"landmark_embedding_cut\.npy: ends early"):
        load_landmark_embedding(truncated)


class RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def test_embedding_npy_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, {"static_lmk_faces_idx": RunsShell(marker)})
    with pytest.raises(ModelFileError, match=r"landmark_embedding\.npy: refusing to load class posix\.system"):
        load_landmark_embedding(path)
    assert not marker.exists()
