"""``--ray`` on a local Ray cluster of 2 CPUs: 40 photos fitted with reduced steps while one
worker process is killed (by its pid) mid-run: every photo ends with a result, none is fitted
twice, the corrupt one is reported, a rerun fits nothing; a texture space built on Ray.

Skipped, saying why, without the ``ray`` extra. Each test runs under a watchdog
(``conftest.watchdog``) so that a deadlocked job fails the run instead of hanging it."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time

import pytest

from flamefit.cli import main
from flamefit.fitting.results import read_report
from flamefit.scale.worker import STATE_DIR, read_journal
from tests.scale.conftest import RAY_TEST_TIMEOUT, render_faces, write_ffhq

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("watchdog")]
if hasattr(pytest.mark, "timeout"):
    pytestmark.append(pytest.mark.timeout(RAY_TEST_TIMEOUT))

N_PHOTOS = 40
QUICK = ["--iters", "5,5", "--resolution", "64", "--device", "cpu"]
RAY = ["--ray", "--ray-workers", "2", "--ray-cpus-per-worker", "0.5"]


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory, demo_head_dir):
    """40 renders in FFHQ's layout with their metadata, and a corrupt 41st photo among them."""
    root = tmp_path_factory.mktemp("ffhq")
    faces = render_faces(demo_head_dir, N_PHOTOS, size=96, seed=3)
    images = write_ffhq(root, faces)
    (images / "00000" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root, images


def summary_rows(out) -> dict[str, dict]:
    with open(out / "summary.csv") as stream:
        return {row["id"]: row for row in csv.DictReader(stream)}


class Killer(threading.Thread):
    """Kills the first worker process that finishes a batch (its journal names its pid) while it
    works on its next one."""

    def __init__(self, out):
        super().__init__(daemon=True)
        self.journal = out / STATE_DIR / "journal"
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            files = sorted(self.journal.glob("*.jsonl")) if self.journal.is_dir() else []
            if files:
                pid = int(files[0].stem.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)
                self.killed = pid
                return
            time.sleep(0.05)


def test_fit_on_ray_survives_a_killed_worker_and_resumes(ray_cluster, ffhq, tmp_path, capsys):
    _, images = ffhq
    out = tmp_path / "out"
    killer = Killer(out)
    killer.start()
    started = time.time()
    status = main(["fit", str(images), "--out", str(out), "--landmarks-from-metadata", "--batch-size", "4",
                   *QUICK, *RAY])
    first_run = time.time() - started
    killer.stop.set()
    assert status == 1  # the corrupt photo
    assert killer.killed is not None, "no worker finished a batch: nothing was killed"
    rows = summary_rows(out)
    assert len(rows) == N_PHOTOS + 1
    assert rows["00000/00001"]["status"] == "failed"
    assert "00000/00001.png" in rows["00000/00001"]["reason"]
    assert read_report(out / "00000" / "00001")["status"] == "failed"
    done = [name for name, row in rows.items() if name != "00000/00001"]
    for name in done:
        assert read_report(out / name)["status"] == "done", name
    journal = read_journal(out)
    fitted = [line["id"] for line in journal if line["status"] == "fitted"]
    assert len(fitted) == len(set(fitted)), "a photo was fitted twice"
    assert set(fitted) | {line["id"] for line in journal if line["status"] == "skipped"} == set(done)
    workers = {line["worker"] for line in journal}
    assert str(killer.killed) in {w.rsplit("-", 1)[1] for w in workers}
    assert len(workers) >= 3, "the killed worker was not replaced"  # two actors + its restart
    output = capsys.readouterr()
    assert "photos/s" in output.out

    # a rerun fits nothing (the corrupt photo is tried again and fails again)
    started = time.time()
    assert main(["fit", str(images), "--out", str(out), "--landmarks-from-metadata", "--batch-size", "4",
                 *QUICK, *RAY]) == 1
    rows = summary_rows(out)
    assert {row["status"] for name, row in rows.items() if name != "00000/00001"} == {"skipped"}
    assert len([line for line in read_journal(out) if line["status"] == "fitted"]) == len(fitted)
    print(f"first run {first_run:.0f} s, rerun {time.time() - started:.0f} s")


def test_build_texture_space_on_ray(ray_cluster, ffhq, tmp_path):
    import numpy as np

    from flamefit.flame.texture_space_io import load_texture_space

    root, images = ffhq
    listing = tmp_path / "selected.txt"
    chosen = [f"00000/{n:05d}" for n in (0, 500)] + [f"{k:05d}/{k + 500 * j:05d}" for k in range(1000, 5000, 1000)
                                                     for j in (0, 1)]
    listing.write_text("\n".join(chosen) + "\n")
    out = tmp_path / "space"
    status = main(["build-texture-space", str(images), "--out", str(out), "--only", str(listing),
                   "--landmarks-from-metadata", "--rounds", "1", "--components", "3", "--resolution", "32",
                   "--iters", "5,5", "--fit-resolution", "64", "--batch-size", "2", "--device", "cpu", *RAY])
    assert status == 0
    space = load_texture_space(out / "texture_space.npz")
    assert space.basis.shape[-1] == 3 and np.isfinite(space.basis).all()
    records = sorted((out / "round_00" / "photos").rglob("*.json"))
    assert len(records) == len(chosen)
    assert (out / "landmarks" / "01000" / "01500.npy").is_file()  # the metadata's, not detected


def test_actors_holding_every_cpu_are_refused(ray_cluster, ffhq, tmp_path, capsys):
    _, images = ffhq
    status = main(["fit", str(images), "--out", str(tmp_path / "out"), "--landmarks-from-metadata", *QUICK,
                   "--ray", "--ray-workers", "4", "--ray-cpus-per-worker", "0.5"])
    assert status == 2
    assert "leave no CPU to read photos" in capsys.readouterr().err


def test_select_on_ray_chooses_as_here(ray_cluster, ffhq, tmp_path):
    _, images = ffhq
    criteria = ["--count", "6", "--landmarks-from-metadata", "--min-face", "40", "--min-sharpness", "0"]
    assert main(["select", str(images), "--out", str(tmp_path / "here"), *criteria]) == 0
    assert main(["select", str(images), "--out", str(tmp_path / "ray"), *criteria, *RAY]) == 0
    assert (tmp_path / "ray" / "selected.txt").read_text() == (tmp_path / "here" / "selected.txt").read_text()
    assert (tmp_path / "ray" / "selection.csv").read_text() == (tmp_path / "here" / "selection.csv").read_text()


def test_regress_on_ray(ray_cluster, ffhq, tmp_path):
    _, images = ffhq
    out = tmp_path / "out"
    assert main(["regress", str(images), "--out", str(out), "--landmarks-from-metadata", "--device", "cpu",
                 "--batch-size", "8", *RAY]) == 1  # the corrupt photo
    rows = summary_rows(out)
    assert sum(row["status"] == "fitted" for row in rows.values()) == N_PHOTOS
    assert rows["00000/00001"]["status"] == "failed"
    assert read_report(out / "04000" / "04500")["method"] == "image regressor"
