"""Batch jobs that can be trusted: photo ids, verified resumes, per-photo inputs, one clear line
for every bad option or input, exit codes, ``summary.csv``, file modes and the output lock.

Each test builds its own bad files and runs ``flamefit`` in-process on the demo head, with a
few rigid steps only (the fit's quality is tested elsewhere)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from flamefit.cli import main

QUICK = ["--iters", "3,0", "--device", "cpu"]

pytestmark = pytest.mark.slow  # each test runs a few short fits (seconds each)


@pytest.fixture(autouse=True)
def demo_head_cache(demo_head_dir, monkeypatch):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def save(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def run(capsys, *argv):
    """``flamefit ARGV`` -> (exit status, stdout, stderr); stderr never holds a traceback."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return status, out, err


def report(folder) -> dict:
    return json.loads((folder / "report.json").read_text())


def summary_rows(out) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as stream:
        return {row["id"]: row for row in csv.DictReader(stream)}


def only_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- a photo's identity ------------------------------------------------------------------------
def test_another_photo_with_the_same_name_is_not_skipped_as_done(tmp_path, capsys, astronaut):
    """Regression: results were keyed on the file stem, so b/face.png (another person) was
    reported "already done" with a/face.png's result."""
    a = save(tmp_path / "a" / "face.png", astronaut)
    b = save(tmp_path / "b" / "face.png", astronaut[:, ::-1].copy())
    out = tmp_path / "out"
    assert run(capsys, "fit", a, "--out", out, *QUICK)[0] == 0
    first = report(out / "face")
    status, stdout, _ = run(capsys, "fit", b, "--out", out, *QUICK)
    assert status == 0 and "1 fitted, 0 skipped" in stdout
    second = report(out / "face")
    assert second["input"] == str(b.absolute()) and second["input_sha256"] != first["input_sha256"]
    assert any("refitted" in note and str(a.absolute()) in note for note in second["notes"])


def test_changed_photo_can_be_refused_and_the_old_result_stays(tmp_path, capsys, astronaut):
    a = save(tmp_path / "a" / "face.png", astronaut)
    out = tmp_path / "out"
    run(capsys, "fit", a, "--out", out, *QUICK)
    before = (out / "face" / "params.npz").read_bytes()
    save(a, astronaut[:, ::-1].copy())  # the file is edited after its fit
    status, stdout, err = run(capsys, "fit", a, "--out", out, "--changed-photos", "refuse", *QUICK)
    assert status == 1 and "0 fitted, 0 skipped (already done), 1 failed" in stdout
    assert "content differs" in stdout and "--changed-photos refit" in stdout
    assert (out / "face" / "params.npz").read_bytes() == before
    assert report(out / "face")["status"] == "done"


def test_same_photo_is_skipped_and_ids_are_paths_relative_to_the_folder(tmp_path, capsys, astronaut):
    tree = tmp_path / "ffhq"
    save(tree / "00000" / "00001.png", astronaut)
    save(tree / "00001" / "00001.png", astronaut[:, ::-1].copy())
    save(tree / "00001" / "odd name!.png", astronaut)
    out = tmp_path / "out"
    assert run(capsys, "fit", tree, "--out", out, *QUICK)[0] == 0
    assert set(summary_rows(out)) == {"00000/00001", "00001/00001", "00001/odd_name_"}
    assert report(out / "00001" / "00001")["id"] == "00001/00001"
    status, stdout, _ = run(capsys, "fit", tree, "--out", out, *QUICK)
    assert status == 0 and "0 fitted, 3 skipped" in stdout


def test_two_photos_of_one_run_never_share_a_folder(tmp_path, capsys, astronaut):
    a = save(tmp_path / "a" / "face.png", astronaut)
    b = save(tmp_path / "b" / "face.png", astronaut[:, ::-1].copy())
    c = save(tmp_path / "a" / "face.jpg", astronaut)
    out = tmp_path / "out"
    assert run(capsys, "fit", a, b, c, "--out", out, *QUICK)[0] == 0
    ids = set(summary_rows(out))
    assert len(ids) == 3 and {report(out / i)["input"] for i in ids} == {
        str(p.absolute()) for p in (a, b, c)}


# -- per-photo inputs --------------------------------------------------------------------------
def test_one_landmark_file_for_several_photos_is_a_usage_error(tmp_path, capsys, astronaut):
    photos = [save(tmp_path / f"{n}.png", astronaut) for n in ("p", "q")]
    lmk = tmp_path / "lmk.npy"
    np.save(lmk, np.zeros((68, 2)))
    status, _, err = run(capsys, "fit", *photos, "--out", tmp_path / "out", "--landmarks", lmk, *QUICK)
    assert status == 2
    line = only_error_line(err)
    assert "--landmarks" in line and "2 photos" in line and "folder" in line
    assert not (tmp_path / "out" / "p").exists()


def test_per_photo_files_come_from_a_folder_by_id(tmp_path, capsys, astronaut):
    from flamefit.fitting.detect import detect_face

    photos = tmp_path / "photos"
    save(photos / "x" / "p.png", astronaut)
    save(photos / "x" / "q.png", astronaut)
    lmk = tmp_path / "lmk"
    (lmk / "x").mkdir(parents=True)
    np.save(lmk / "x" / "p.npy", detect_face(astronaut).landmarks)
    status, _, _ = run(capsys, "fit", photos, "--out", tmp_path / "out", "--landmarks", lmk, *QUICK)
    assert status == 0
    assert report(tmp_path / "out" / "x" / "p")["landmarks_source"] == "user file"
    assert report(tmp_path / "out" / "x" / "q")["landmarks_source"] != "user file"


@pytest.mark.parametrize("kind", ["garbage", "pickled"])
def test_a_bad_init_file_fails_its_photo_alone(tmp_path, capsys, astronaut, kind):
    photos = tmp_path / "photos"
    save(photos / "p.png", astronaut)
    save(photos / "q.png", astronaut)
    init = tmp_path / "init"
    init.mkdir()
    if kind == "garbage":
        (init / "p.npz").write_bytes(b"definitely not a zip file")
    else:
        np.savez(init / "p.npz", shape=np.array([{"evil": 1}], dtype=object))
    status, stdout, _ = run(capsys, "fit", photos, "--out", tmp_path / "out", "--init", init, *QUICK)
    assert status == 1
    rows = summary_rows(tmp_path / "out")
    assert rows["q"]["status"] == "fitted" and rows["p"]["status"] == "failed"
    reason = rows["p"]["reason"]
    assert "p.npz" in reason and "allow_pickle" not in reason
    assert ("not a valid .npz" if kind == "garbage" else "pickled Python objects") in reason
    assert stdout.count("p.npz") == 1  # each failure printed once


def test_all_black_mask_fails_the_photo(tmp_path, capsys, astronaut):
    """Regression: a mask that excludes everything finished as "done"."""
    photo = save(tmp_path / "p.png", astronaut)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros(astronaut.shape[:2], np.uint8)).save(mask)
    status, stdout, _ = run(capsys, "fit", photo, "--out", tmp_path / "out", "--mask", mask, *QUICK)
    assert status == 1 and "all black" in stdout
    assert report(tmp_path / "out" / "p")["status"] == "failed"


def test_texture_space_of_another_uv_layout_is_refused(tmp_path, capsys, astronaut, demo_head_dir):
    from flamefit.flame.texture_space_io import load_texture_space, save_texture_space

    space = load_texture_space(demo_head_dir / "FLAME_texture.npz")
    other = tmp_path / "other.npz"
    save_texture_space(other, space.mean, space.basis, space.vt, space.ft[:10])
    photo = save(tmp_path / "p.png", astronaut)
    status, _, err = run(capsys, "fit", photo, "--out", tmp_path / "out", "--texture-space", other, *QUICK)
    assert status == 2 and "UV layout" in only_error_line(err)


# -- bad options and environments --------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--device", "quantum"], "--device 'quantum' is not a device"),
    (["--resolution", "0"], "--resolution"),
    (["--iters", "-1,3"], "each 0 or more"),
    (["--iters", "0,0"], "would fit nothing"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_options_are_one_line(tmp_path, capsys, astronaut, args, fragment):
    photo = save(tmp_path / "p.png", astronaut)
    status, _, err = run(capsys, "fit", photo, "--out", tmp_path / "out", *args)
    assert status == 2 and fragment in only_error_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys, astronaut):
    photo = save(tmp_path / "p.png", astronaut)
    status, _, err = run(capsys, "fit", photo, "--out", tmp_path / "out", "--device", "cuda")
    assert status == 2 and "CUDA is not available" in only_error_line(err)


def test_empty_folder_glob_and_missing_file_are_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, fragment in ((empty, "holds no images"), (tmp_path / "*.png", "no image file matches"),
                             (tmp_path / "missing.jpg", "no such file")):
        status, _, err = run(capsys, "fit", target, "--out", tmp_path / "out", *QUICK)
        line = only_error_line(err)
        assert status == 2 and str(target) in line and fragment in line
    assert not (tmp_path / "out" / "*").exists()


def test_symlink_loop_is_named(tmp_path, capsys):
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    status, _, err = run(capsys, "fit", loop, "--out", tmp_path / "out", *QUICK)
    assert status == 2 and "symbolic link loop" in only_error_line(err)


def test_convert_into_a_folder_and_over_a_file(tmp_path, capsys, demo_head_dir):
    target = tmp_path / "converted"
    target.mkdir()
    source = demo_head_dir / "generic_model.pkl"
    status, stdout, _ = run(capsys, "convert", source, target)
    assert status == 0 and (target / "generic_model.npz").is_file()
    status, _, err = run(capsys, "convert", source, target)
    assert status == 2 and "--overwrite" in only_error_line(err)
    assert run(capsys, "convert", source, target, "--overwrite")[0] == 0


def test_texture_space_rerun_with_other_settings_says_which(tmp_path, capsys):
    photos = tmp_path / "walls"
    for n in range(2):
        save(photos / f"{n}.png", np.full((300, 300, 3), 150 + n, np.uint8))
    args = ["build-texture-space", photos, "--out", tmp_path / "space", "--iters", "1,0",
            "--device", "cpu", "--resolution", "32"]
    status, _, err = run(capsys, *args, "--components", "4")
    assert status == 2 and "usable training photo" in err  # no face anywhere: nothing to build
    status, _, err = run(capsys, *args, "--components", "5")
    line = only_error_line(err)
    assert status == 2 and "--components was 4, now 5" in line and "start over" in line


# -- exit codes, summary, Ctrl-C, file modes, lock ---------------------------------------------
def test_exit_status_summary_csv_and_failures_printed_once(tmp_path, capsys, astronaut):
    photos = tmp_path / "photos"
    save(photos / "good.png", astronaut)
    (photos / "bad.png").write_text("not an image")
    out = tmp_path / "out"
    status, stdout, err = run(capsys, "fit", photos, "--out", out, *QUICK)
    assert status == 1
    assert (stdout + err).count("bad.png") == 1
    assert "1 fitted, 0 skipped (already done), 1 failed" in stdout and "summary.csv" in stdout
    rows = summary_rows(out)
    assert rows["good"]["status"] == "fitted" and float(rows["good"]["landmark_error_percent_iod"]) > 0
    assert rows["bad"]["status"] == "failed" and "bad.png" in rows["bad"]["reason"]
    status, stdout, _ = run(capsys, "fit", photos, "--out", out, *QUICK)
    assert status == 1 and summary_rows(out)["good"]["status"] == "skipped"


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path, capsys, astronaut, monkeypatch):
    import flamefit.fitting.batch as fit_images

    photos = tmp_path / "photos"
    for name in ("a", "b"):
        save(photos / f"{name}.png", astronaut)
    prepare = fit_images.prepare_photo

    def interrupted_on_b(photo, scene, options):
        if photo.id == "b":
            raise KeyboardInterrupt
        return prepare(photo, scene, options)

    monkeypatch.setattr(fit_images, "prepare_photo", interrupted_on_b)
    out = tmp_path / "out"
    status, stdout, err = run(capsys, "fit", photos, "--out", out, *QUICK)
    assert status == 130 and "1 fitted" in stdout and "run the same command again" in err.lower()
    assert report(out / "a")["status"] == "done" and summary_rows(out)["a"]["status"] == "fitted"
    monkeypatch.setattr(fit_images, "prepare_photo", prepare)
    status, stdout, _ = run(capsys, "fit", photos, "--out", out, *QUICK)
    assert status == 0 and "1 fitted, 1 skipped" in stdout


def test_result_files_are_readable_by_others(tmp_path, capsys, astronaut):
    previous = os.umask(0o022)
    try:
        photo = save(tmp_path / "p.png", astronaut)
        assert run(capsys, "fit", photo, "--out", tmp_path / "out", *QUICK, "--gif")[0] == 0
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(files) >= 10
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o644)}


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capsys, astronaut):
    from flamefit.utils import folder_lock

    photo = save(tmp_path / "p.png", astronaut)
    with folder_lock(tmp_path / "out"):
        status, _, err = run(capsys, "fit", photo, "--out", tmp_path / "out", *QUICK)
    assert status == 2 and "another flamefit run" in only_error_line(err)
    assert run(capsys, "fit", photo, "--out", tmp_path / "out", *QUICK)[0] == 0


def test_from_fits_works_from_another_folder(tmp_path, capsys, astronaut, monkeypatch):
    from flamefit.texture_space.build import fit_results

    save(tmp_path / "shoot" / "p.png", astronaut)
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "fit", "shoot", "--out", "fits", *QUICK)[0] == 0  # relative paths
    monkeypatch.chdir(tmp_path / "shoot")
    photos, reports = fit_results(tmp_path / "fits")
    assert photos == [((tmp_path / "shoot" / "p.png").absolute(), "p")]
    assert reports["p"]["status"] == "done"
