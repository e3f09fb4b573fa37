"""Texture-space builds beyond round 0: the second round starts from the first's fits and
space and a rerun redoes nothing; and round 0 taken from ``flamefit fit`` results
(``from_fits``) instead of fitting. Tiny sizes: a few synthetic photos, 32-texel maps."""

from __future__ import annotations

import filecmp
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

import flamefit.fitting.optimizer
from flamefit.cli import main
from flamefit.fitting.errors import InputError
from flamefit.fitting.batch import FitOptions, fit_images
from flamefit.fitting.image_io import load_image
from flamefit.fitting.parameters import FitParameters
from flamefit.fitting.scene import HeadScene
from flamefit.flame.selection import files_in
from flamefit.flame.texture_space_io import load_texture_space
from tests.texture_space.test_build import render_photos
from flamefit.texture_space.build import BuildOptions, build_texture_space
from flamefit.texture_space.state import load_unwrap
from flamefit.texture_space.unwrap import texel_surface, unwrap_photos

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # builds with real fits

N_PHOTOS = 10
UV = 32
PARAMETERS = ("shape", "expression", "pose", "light", "camera")


@pytest.fixture(scope="module")
def photos(demo_head_dir, tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("round_faces")
    render_photos(demo_head_dir, folder, N_PHOTOS)
    return folder


@pytest.fixture
def fit_calls(monkeypatch):
    """Every ``fit_batch`` call of the build: ``(round 0 finished at the call, init)``."""
    calls: list[tuple[bool, FitParameters | None]] = []
    original = flamefit.fitting.optimizer.fit_batch
    state = {"out": None}

    def recording(scene, images, landmarks, skin, config, init=None, **kwargs):
        finished = state["out"] is not None and (state["out"] / "round_00" / "report.json").is_file()
        calls.append((finished, None if init is None else init.detach()))
        return original(scene, images, landmarks, skin, config, init=init, **kwargs)

    monkeypatch.setattr(flamefit.fitting.optimizer, "fit_batch", recording)
    return calls, state


def test_second_round_starts_from_the_first_and_resumes(photos, demo_head_dir, tmp_path, fit_calls):
    calls, state = fit_calls
    out = state["out"] = tmp_path / "build"
    options = BuildOptions(components=2, rounds=2, resolution=UV, batch_size=N_PHOTOS, iters=(15, 10),
                           fit_resolution=80, unwrap_crop=64, landmarks=photos / "landmarks", flame_dir=demo_head_dir,
                           bootstrap="model", min_skin=0.0, holdout=0.2)
    seen: list[tuple[int, str]] = []
    summary = build_texture_space([photos / "photos"], out, options, show_progress=False,
                                  on_photo=lambda r, name, record: seen.append((r, name)))
    names = [f"face_{i:02d}" for i in range(N_PHOTOS)]
    assert seen == [(0, n) for n in names] + [(1, n) for n in names]

    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    for report in rounds:
        assert report["n_train"] == N_PHOTOS - 2 and report["n_holdout"] == 2 and not report["skipped"]
        assert 0 < report["compactness"]["1"] <= report["compactness"]["2"] <= 1.0
        gen = report["generalisation"]
        assert np.isfinite(gen["rmse_space"]) and np.isfinite(gen["rmse_mean_only"])
        assert np.isfinite(report["fit"]["photometric_error_mean"]) and report["fit"]["landmark_error_px_mean"] >= 0
    assert rounds[0]["holdout"] == rounds[1]["holdout"]
    assert "round 1:" in (out / "summary.txt").read_text()

    # one batch per round: round 0 from the neutral start, round 1 from round 0's fits
    assert [finished for finished, _ in calls] == [False, True]
    assert calls[0][1] is None
    init = calls[1][1]
    for row, name in enumerate(names):
        with np.load(out / "round_00" / "fits" / f"{name}.npz") as previous:
            for key in PARAMETERS:
                np.testing.assert_allclose(getattr(init, key)[row].numpy(), previous[key], rtol=0, atol=1e-6)
    assert not torch.equal(init.camera, init.camera[:1].expand_as(init.camera))  # not a shared default
    # round 1's parameters moved on from round 0's (it refitted)
    with np.load(out / "round_00" / "fits" / "face_00.npz") as a, np.load(out / "round_01" / "fits" / "face_00.npz") as b:
        assert not np.allclose(a["pose"], b["pose"])

    round_1 = out / "round_01" / "texture_space.npz"
    assert load_texture_space(round_1).metadata["round"] == 1
    assert load_texture_space(out / "round_00" / "texture_space.npz").metadata["round"] == 0
    assert summary.space_path == out / "texture_space.npz"
    assert filecmp.cmp(summary.space_path, round_1, shallow=False)

    # a rerun after both rounds fits, unwraps and records nothing, and reports the same rounds
    calls.clear()
    again: list[tuple[int, str]] = []
    stamp = round_1.stat().st_mtime_ns
    rerun = build_texture_space([photos / "photos"], out, options, show_progress=False,
                                on_photo=lambda r, name, record: again.append((r, name)))
    assert again == [] and calls == []
    assert rerun.rounds == rounds and round_1.stat().st_mtime_ns == stamp


def _direct_unwrap(demo_head_dir, fit_dir, crop_size):
    """Unwrap one ``flamefit fit`` result independently of the build: the crop square rebuilt
    from the report's ``crop_to_original`` (a photo under 2048 px: no downscale), all pixels
    weighted 1, the fit's parameters."""
    report = json.loads((fit_dir / "report.json").read_text())
    to_original = np.asarray(report["crop_to_original"])
    with np.load(fit_dir / "params.npz") as data:
        values = {k: data[k] for k in data.files}
    fit_size = int(values["resolution"])
    # crop pixel u at the fit's size is at (u + 0.5) * k - 0.5 at crop_size's, k = crop_size / fit_size
    k = fit_size / crop_size
    rescale = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1.0]])
    to_photo = (to_original @ rescale)[:2]
    rgb = load_image(report["input"]).rgb.astype(np.float32) / 255.0
    crop = cv2.warpAffine(rgb, to_photo, (crop_size, crop_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    scene = HeadScene.from_model_files(files_in(demo_head_dir, kind="test"), texture_resolution=UV, backend="torch")
    params = FitParameters(**{key: torch.tensor(values[key])[None].float() for key in PARAMETERS},
                           texture=torch.zeros(1, scene.albedo.n_components))
    surface = texel_surface(scene.vt.numpy().astype(np.float64), scene.ft.numpy(), UV)
    with torch.no_grad():
        photo = torch.tensor(crop).permute(2, 0, 1)[None].clamp(0, 1)
        return unwrap_photos(scene, params, photo, torch.ones(1, 1, crop_size, crop_size), surface)


def test_round_zero_from_flamefit_fit_results(photos, demo_head_dir, tmp_path, fit_calls, capsys):
    calls, state = fit_calls
    inputs = tmp_path / "photos"
    inputs.mkdir()
    fitted = [f"face_{i:02d}" for i in range(3)]
    for name in fitted:
        shutil.copy(photos / "photos" / f"{name}.png", inputs)
    (inputs / "broken.png").write_bytes(b"not an image")
    fits = tmp_path / "fits"
    fit_summary = fit_images([inputs], fits, FitOptions(resolution=80, rigid_steps=10, full_steps=5, batch_size=4,
                                                        flame_dir=demo_head_dir, landmarks=photos / "landmarks"),
                             show_progress=False)
    assert sorted(fit_summary.fitted) == fitted and list(fit_summary.failed) == ["broken"]
    assert len(calls) == 1  # flamefit fit and the build share one batch-fit function
    calls.clear()

    out = state["out"] = tmp_path / "build"
    crop_size = 128  # the 128 px photos' face square is smaller: no low-pass before resampling
    options = BuildOptions(components=2, rounds=2, resolution=UV, batch_size=4, iters=(2, 2), fit_resolution=64,
                           unwrap_crop=crop_size, flame_dir=demo_head_dir, min_skin=0.0, from_fits=fits)
    summary = build_texture_space([], out, options, show_progress=False)

    # round 0 used every finished fit without fitting; round 1 refitted them
    assert calls and all(finished for finished, _ in calls)
    round_0 = {name: json.loads((out / "round_00" / "photos" / f"{name}.json").read_text())
               for name in fitted + ["broken"]}
    for name in fitted:
        assert round_0[name]["status"] == "used" and round_0[name]["from_fit"] == str(fits / name)
        report = json.loads((fits / name / "report.json").read_text())
        assert round_0[name]["photometric_error"] == pytest.approx(report["photometric_error"])
        with np.load(fits / name / "params.npz") as fit, np.load(out / "round_00" / "fits" / f"{name}.npz") as used:
            for key in PARAMETERS:
                np.testing.assert_allclose(used[key], fit[key], rtol=0, atol=1e-6)
        # the fit's landmarks are kept for the later rounds
        with np.load(fits / name / "landmarks.npz") as marks:
            np.testing.assert_allclose(np.load(out / "landmarks" / f"{name}.npy"), marks["detected"])
    fit_error = json.loads((fits / "broken" / "report.json").read_text())["error"]
    for reason in (round_0["broken"]["reason"], summary.skipped["broken"]):
        assert reason.startswith("its fit failed") and fit_error in reason
    assert sorted(summary.used) == fitted
    assert [r["n_used"] for r in summary.rounds] == [3, 3]

    # the round-0 maps are the fits' parameters unwrapping the fits' own crop squares
    for name in fitted:
        albedo, confidence = load_unwrap(out / "round_00" / "unwraps" / f"{name}.npz")
        direct = _direct_unwrap(demo_head_dir, fits / name, crop_size)
        seen = confidence > 0
        assert seen.sum() > 0.2 * (direct.confidence[0].numpy() > 0).sum()
        assert (direct.confidence[0].numpy()[seen] > 0).all()
        np.testing.assert_allclose(albedo[seen], direct.albedo[0].numpy()[seen], rtol=0, atol=2e-3)

    # photos and --from-fits together are refused, through the command line too
    with pytest.raises(InputError, match="not both"):
        build_texture_space([inputs], tmp_path / "other", options, show_progress=False)
    assert main(["build-texture-space", str(inputs), "--out", str(tmp_path / "other"), "--from-fits", str(fits),
                 "--flame-dir", str(demo_head_dir)]) == 2
    assert "not both" in capsys.readouterr().err
