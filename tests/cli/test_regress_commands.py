"""``flamefit train-regressor`` and ``flamefit regress`` end to end: train a tiny regressor,
reconstruct a photo with the fit's result files, refine it with ``fit --init``, resume, and one
clear line for a wrong model or a run folder of other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flamefit.cli import main
from tests.cli.test_batch_trust import only_error_line, run
from tests.regressor.photos import astronaut_with_landmarks

pytestmark = pytest.mark.slow  # a tiny training and a short fit (about half a minute)

TINY = ["--steps", "6", "--batch-size", "4", "--resolution", "64", "--width", "8",
        "--validation-size", "8", "--validation-every", "3", "--checkpoint-every", "3",
        "--device", "cpu", "--open-model"]


def test_train_regress_and_refine(tmp_path, capsys, one_thread):
    photo, landmarks = astronaut_with_landmarks(tmp_path)
    model = tmp_path / "model"
    status, out, _ = run(capsys, "train-regressor", "--out", model, *TINY)
    assert status == 0 and "6 steps" in out and (model / "regressor.pt").is_file()
    training = json.loads((model / "training.json").read_text())
    assert training["finished"] and [v["step"] for v in training["validation"]] == [3, 6]

    status, _, err = run(capsys, "train-regressor", "--out", model, *TINY, "--learning-rate", "0.5")
    assert status == 2 and "learning_rate" in only_error_line(err)

    result = tmp_path / "regressed"
    argv = ["regress", photo, "--model", model, "--out", result, "--landmarks", landmarks,
            "--device", "cpu", "--open-model"]
    status, out, _ = run(capsys, *argv)
    assert status == 0 and "1 fitted" in out
    report = json.loads((result / "astronaut" / "report.json").read_text())
    assert report["status"] == "done" and report["method"] == "image regressor"
    for name in ("params.npz", "mesh.obj", "mesh.glb", "camera.npz", "landmarks.npz", "overlay.png", "sheet.png"):
        assert (result / "astronaut" / name).is_file(), name
    assert np.load(result / "astronaut" / "params.npz")["resolution"] == 64
    status, out, _ = run(capsys, *argv)
    assert status == 0 and "1 skipped" in out
    status, _, _ = run(capsys, *argv[:5], tmp_path / "numbers", *argv[6:], "--outputs", "params")
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "numbers" / "astronaut").iterdir()) == [
        "camera.npz", "landmarks.npz", "params.npz", "report.json"]

    refined = tmp_path / "refined"
    status, out, _ = run(capsys, "fit", photo, "--init", result, "--out", refined, "--landmarks", landmarks,
                         "--iters", "2,2", "--resolution", "64", "--device", "cpu", "--open-model")
    assert status == 0, out
    notes = json.loads((refined / "astronaut" / "report.json").read_text())["notes"]
    assert any("params.npz" in note for note in notes)


def test_regress_with_a_folder_holding_no_regressor_is_one_line(tmp_path, capsys):
    photo, _ = astronaut_with_landmarks(tmp_path)
    status, _, err = run(capsys, "regress", photo, "--model", tmp_path, "--out", tmp_path / "out",
                         "--device", "cpu", "--open-model")
    assert status == 2
    assert "no trained image regressor there" in only_error_line(err)
