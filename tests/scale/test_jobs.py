"""``flamefit fit`` on datasets without Ray: FFHQ's layout with its metadata landmarks, a zip
with a corrupt member, resuming across containers, and the plain path left as it was."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil

import pytest

from flamefit.cli import main
from flamefit.fitting.results import read_report
from flamefit.scale.worker import read_journal
from tests.scale.conftest import images_in, render_faces, write_ffhq, write_parquet, write_tar_shards, write_zip

pytestmark = pytest.mark.slow  # real fits (reduced steps)

QUICK = ["--iters", "5,5", "--resolution", "64", "--device", "cpu", "--batch-size", "2"]


@pytest.fixture(autouse=True)
def demo_head_cache(demo_head_dir, monkeypatch):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory, demo_head_dir):
    root = tmp_path_factory.mktemp("ffhq")
    images = write_ffhq(root, render_faces(demo_head_dir, 4, size=96))
    return root, images


def summary_rows(out) -> dict[str, dict]:
    with open(out / "summary.csv") as stream:
        return {row["id"]: row for row in csv.DictReader(stream)}


def test_ffhq_folder_with_metadata_landmarks(ffhq, tmp_path, capsys):
    root, images = ffhq
    out = tmp_path / "out"
    assert main(["fit", str(images), "--out", str(out), "--landmarks-from-metadata", *QUICK]) == 0
    rows = summary_rows(out)
    assert sorted(rows) == ["00000/00000", "00000/00500", "01000/01000", "01000/01500"]
    assert {row["status"] for row in rows.values()} == {"fitted"}
    report = read_report(out / "01000" / "01500")
    assert report["status"] == "done" and report["landmarks_source"] == "user file"
    assert report["input"] == str(images.absolute() / "01000" / "01500.png")
    assert any("FFHQ metadata" in note for note in report["notes"])
    assert "photos/s" in capsys.readouterr().out
    # the same photos in a zip, tar shards or parquet next to the metadata: same ids, same bytes:
    # nothing to redo
    files = images_in(images)
    containers = [write_zip(root / "ffhq.zip", files), root / "shards"]
    write_tar_shards(root / "shards", files)
    if importlib.util.find_spec("pyarrow") is not None:
        containers.append(write_parquet(root / "ffhq.parquet", files))
    try:
        for container in containers:
            assert main(["fit", str(container), "--out", str(out), "--landmarks-from-metadata", *QUICK]) == 0
            assert {row["status"] for row in summary_rows(out).values()} == {"skipped"}, container
    finally:
        for container in containers:
            shutil.rmtree(container) if container.is_dir() else container.unlink()
    fitted = [line["id"] for line in read_journal(out) if line["status"] == "fitted"]
    assert sorted(fitted) == sorted(rows)  # each fitted once, in the first run


def test_a_corrupt_member_fails_alone_and_reports_name_the_archive(ffhq, tmp_path, capsys):
    root, images = ffhq
    files = images_in(images)
    files["00000/00500.png"] = files["00000/00500.png"][:300]  # truncated PNG
    files["00000/notes.png"] = b"this is not an image"
    zipped = write_zip(root / "damaged.zip", files)
    out = tmp_path / "out"
    try:
        status = main(["fit", str(zipped), "--out", str(out), "--landmarks-from-metadata", *QUICK])
    finally:
        zipped.unlink()
    assert status == 1
    rows = summary_rows(out)
    assert rows["00000/00000"]["status"] == "fitted" and rows["01000/01500"]["status"] == "fitted"
    for name in ("00000/00500", "00000/notes"):
        assert rows[name]["status"] == "failed"
        report = read_report(out / name)
        assert report["status"] == "failed" and report["input"] == str(zipped.absolute() / f"{name}.png")
        assert str(zipped.absolute()) in report["error"] and "flamefit-scale-" not in report["error"]
    assert "failed: 00000/notes" in capsys.readouterr().out


def test_plain_folders_still_take_the_single_machine_path(ffhq, tmp_path, monkeypatch):
    _, images = ffhq
    import flamefit.scale.jobs as jobs

    def refuse(*args, **kwargs):
        raise AssertionError("a plain folder went through the dataset path")

    monkeypatch.setattr(jobs, "fit_dataset", refuse)
    landmarks = tmp_path / "landmarks"
    for name in ("00000/00000",):
        target = landmarks / f"{name}.npy"
        target.parent.mkdir(parents=True)
        import numpy as np

        data = json.loads((images.parent / "ffhq-dataset-v2.json").read_text())["0"]["image"]["face_landmarks"]
        np.save(target, np.asarray(data))
    out = tmp_path / "out"
    assert main(["fit", str(images / "00000" / "00000.png"), "--out", str(out),
                 "--landmarks", str(landmarks / "00000" / "00000.npy"), *QUICK]) == 0
    assert read_report(out / "00000")["status"] == "done"
    assert not (out / ".flamefit-scale").exists()


def test_one_landmark_file_for_a_dataset_is_a_usage_error(ffhq, tmp_path, capsys):
    root, images = ffhq
    zipped = write_zip(tmp_path / "photos.zip", images_in(images))
    one = tmp_path / "one.npy"
    one.write_bytes(b"")
    assert main(["fit", str(zipped), "--out", str(tmp_path / "out"), "--landmarks", str(one), *QUICK]) == 2
    assert "--landmarks" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_build_texture_space_from_a_zip_unpacks_once_and_uses_the_metadata(ffhq, tmp_path):
    root, images = ffhq
    zipped = write_zip(root / "faces.zip", images_in(images))
    out = tmp_path / "space"
    command = ["build-texture-space", str(zipped), "--out", str(out), "--landmarks-from-metadata",
               "--rounds", "1", "--components", "2", "--resolution", "32", "--iters", "5,5",
               "--fit-resolution", "64", "--batch-size", "2", "--device", "cpu"]
    try:
        assert main(command) == 0
        unpacked = out / "inputs" / "01000" / "01500.png"
        assert unpacked.read_bytes() == (images / "01000" / "01500.png").read_bytes()
        assert (out / "landmarks" / "01000" / "01500.npy").is_file() and (out / "texture_space.npz").is_file()
        records = sorted(p.relative_to(out / "round_00" / "photos").as_posix()
                         for p in (out / "round_00" / "photos").rglob("*.json"))
        assert records == ["00000/00000.json", "00000/00500.json", "01000/01000.json", "01000/01500.json"]
        stamp = unpacked.stat().st_mtime_ns
        assert main(command) == 0  # a rerun: the round is finished, nothing unpacked again
        assert unpacked.stat().st_mtime_ns == stamp
    finally:
        zipped.unlink()


def test_regress_a_zip_with_the_metadata_landmarks(ffhq, tmp_path):
    root, images = ffhq
    zipped = write_zip(root / "regress.zip", images_in(images))
    out = tmp_path / "out"
    command = ["regress", str(zipped), "--out", str(out), "--landmarks-from-metadata", "--device", "cpu"]
    try:
        assert main(command) == 0
        report = read_report(out / "01000" / "01500")
        assert report["method"] == "image regressor" and report["landmarks_source"] == "user file"
        assert report["input"] == str(zipped.absolute() / "01000" / "01500.png")
        assert main(command) == 0
        assert {row["status"] for row in summary_rows(out).values()} == {"skipped"}
    finally:
        zipped.unlink()


def test_outputs_params_writes_the_numbers_only(ffhq, tmp_path):
    _, images = ffhq
    out = tmp_path / "out"
    assert main(["fit", str(images / "00000"), "--out", str(out), "--landmarks-from-metadata",
                 "--outputs", "params", *QUICK]) == 0
    written = {p.name for p in (out / "00500").iterdir()}
    assert written == {"params.npz", "camera.npz", "landmarks.npz", "report.json"}
    assert read_report(out / "00500")["outputs"] == ["camera.npz", "landmarks.npz", "params.npz", "report.json"]
