"""``flamefit inspect`` / ``convert`` and model selection, on the demo head and a FLAME-format file."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import scipy.sparse

from flamefit.cli import main
from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_file import load_flame_model
from flamefit.flame.selection import select_model


@pytest.fixture
def flame_like_dir(demo_head_dir, tmp_path):
    """A folder laid out like data/flame/ whose generic_model.pkl has FLAME's 300 + 100 columns
    and no demo-head keys (what a real FLAME 2020 file looks like to the loaders)."""
    with open(demo_head_dir / "generic_model.pkl", "rb") as handle:
        raw = pickle.load(handle)
    vertices = raw["v_template"].shape[0]
    shapedirs = np.zeros((vertices, 3, 400))
    shapedirs[:, :, :100] = raw["shapedirs"][:, :, :100]
    shapedirs[:, :, 300:350] = raw["shapedirs"][:, :, 100:150]
    flame = {key: raw[key] for key in ("v_template", "f", "posedirs", "weights", "kintree_table",
                                        "J", "bs_style", "bs_type")}
    flame["shapedirs"] = shapedirs
    flame["J_regressor"] = scipy.sparse.csc_matrix(raw["J_regressor"])
    folder = tmp_path / "flame"
    folder.mkdir()
    with open(folder / "generic_model.pkl", "wb") as handle:
        pickle.dump(flame, handle, protocol=2)
    for name in ("landmark_embedding.npy", "head_template_mesh.obj", "FLAME_masks.pkl"):
        shutil.copy(demo_head_dir / name, folder / name)
    return folder


def test_inspect_demo_head(demo_head_dir, capsys):
    assert main(["inspect", str(demo_head_dir)]) == 0
    text = capsys.readouterr().out
    assert "procedural test head (NOT FLAME)" in text
    assert "identity components    100" in text and "expression components  50" in text
    assert "dynamic contour table  79 yaw rows x 17 points" in text
    assert "albedo space: 256x256 texels" in text
    assert "left_eyeball" in text


def test_inspect_flame_format_file(flame_like_dir, capsys):
    assert main(["inspect", str(flame_like_dir / "generic_model.pkl")]) == 0
    text = capsys.readouterr().out
    assert "FLAME-format model" in text and "NOT FLAME" not in text
    assert "identity components    300" in text and "expression components  100" in text
    assert "jaw" in text and "parent  1" in text


def test_inspect_reports_a_broken_file(tmp_path, capsys):
    broken = tmp_path / "generic_model.pkl"
    broken.write_bytes(b"\x80\x02}q\x00(X")  # a truncated pickle
    assert main(["inspect", str(broken)]) == 1
    assert "could not be read" in capsys.readouterr().out


def test_convert_round_trips(flame_like_dir, tmp_path, capsys):
    target = tmp_path / "generic_model.npz"
    assert main(["convert", str(flame_like_dir / "generic_model.pkl"), str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    original = load_flame_model(flame_like_dir / "generic_model.pkl")
    converted = load_flame_model(target)
    for name in ("v_template", "faces", "shapedirs", "exprdirs", "posedirs", "j_regressor", "weights", "parents"):
        np.testing.assert_array_equal(getattr(original, name), getattr(converted, name))
    with np.load(target, allow_pickle=False) as data:
        assert data["shapedirs"].shape[2] == 400


def test_select_prefers_flame_and_says_so(flame_like_dir, monkeypatch, caplog):
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(flame_like_dir))
    with caplog.at_level("INFO"):
        files = select_model()
    assert files.kind == "flame" and files.model.name == "generic_model.pkl"
    assert files.landmarks is not None and files.template is not None
    assert "using FLAME" in caplog.text


def test_select_falls_back_to_the_open_model(flame_like_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(tmp_path / "empty"))
    with caplog.at_level("INFO"):
        files = select_model()
    assert files.kind == "open" and "ICT-FaceKit Light (MIT), converted by flamefit" in caplog.text
    assert files.describe() == "ICT-FaceKit Light (MIT), converted by flamefit"
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(flame_like_dir))
    assert select_model().kind == "flame" and select_model(open_model=True).kind == "open"


def test_inspect_open_model(capsys):
    from flamefit.flame.selection import OPEN_MODEL_DIR

    assert main(["inspect", str(OPEN_MODEL_DIR)]) == 0
    text = capsys.readouterr().out
    assert "identity components    100" in text and "expression components  53" in text
    assert "dynamic contour table  79 yaw rows x 17 points" in text
    assert "left_eyeball" in text and "ICT-FaceKit" in text


def test_explicit_flame_dir_without_a_model_is_an_error(tmp_path, capsys):
    with pytest.raises(ModelFileError, match="no FLAME model found"):
        select_model(tmp_path)
    assert main(["inspect", "--flame-dir", str(tmp_path)]) == 2
    assert "download it from the FLAME website" in capsys.readouterr().err
