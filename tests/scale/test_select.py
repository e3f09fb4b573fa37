"""``flamefit select``: measures (faces, yaw, size, sharpness, skin tone), the criteria, the
balance across skin-tone bands and the files it writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from flamefit.cli import main
from flamefit.scale.select import ITA_BANDS, Measures, choose, ita_band
from tests.scale.conftest import render_faces, write_ffhq

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ita_bands_follow_chardon():
    assert [ita_band(v) for v in (60, 50, 30, 20, 0, -40)] == [name for name, _ in ITA_BANDS]


def test_choice_is_balanced_across_bands_and_sharpest_first():
    rng = np.random.default_rng(0)
    counts = {"very light": 40, "light": 30, "intermediate": 8, "tan": 3, "brown": 2, "dark": 1}
    passed = [Measures(f"{band}-{i}", "x", band=band, sharpness=float(rng.uniform(20, 100)))
              for band, n in counts.items() for i in range(n)]
    chosen = choose(passed, 30, balance=True, seed=0)
    per_band = {band: sum(m.band == band for m in chosen) for band in counts}
    # the small bands give everything they have, the rest is shared by the large ones
    assert per_band == {"very light": 8, "light": 8, "intermediate": 8, "tan": 3, "brown": 2, "dark": 1}
    light = sorted((m for m in passed if m.band == "light"), key=lambda m: -m.sharpness)
    assert {m.id for m in chosen if m.band == "light"} == {m.id for m in light[:8]}
    unbalanced = choose(passed, 30, balance=False, seed=0)
    assert [m.id for m in unbalanced] == [m.id for m in sorted(passed, key=lambda m: -m.sharpness)[:30]]
    assert len(choose(passed, 500, balance=True, seed=0)) == len(passed)


@pytest.mark.slow
def test_select_on_ffhq_metadata_writes_its_choice(demo_head_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    yaws = [0.0, 10.0, -15.0, 45.0, -50.0, 5.0]
    root = tmp_path / "ffhq"
    write_ffhq(root, render_faces(demo_head_dir, len(yaws), size=160, seed=4, yaw_degrees=yaws))
    out = tmp_path / "selection"
    status = main(["select", str(root), "--out", str(out), "--count", "3", "--landmarks-from-metadata",
                   "--min-face", "40", "--min-sharpness", "0", "--max-yaw", "30"])
    assert status == 0
    with open(out / "selection.csv") as stream:
        rows = {row["id"]: row for row in csv.DictReader(stream)}
    assert len(rows) == len(yaws)
    measured = [float(rows[f"images1024x1024/{name}"]["yaw"]) for name in
                ("00000/00000", "00000/00500", "01000/01000", "01000/01500", "02000/02000", "02000/02500")]
    assert np.abs(np.abs(measured) - np.abs(yaws)).max() < 15  # the regressor's accuracy, on another head
    turned = [name for name, row in rows.items() if row["reason"].startswith("yaw")]
    assert sorted(turned) == ["images1024x1024/01000/01500", "images1024x1024/02000/02000"]
    chosen = (out / "selected.txt").read_text().split()
    assert len(chosen) == 3 and all(rows[c]["chosen"] == "True" for c in chosen)
    summary = json.loads((out / "selection.json").read_text())
    assert summary["n_chosen"] == 3 and sum(b["chosen"] for b in summary["bands"].values()) == 3
    assert "chose 3 of 6 photos" in capsys.readouterr().out
    # the list feeds --only
    from flamefit.scale.datasets import open_dataset

    assert [p.id for p in open_dataset([root], only=out / "selected.txt").photos] == chosen


@pytest.mark.slow
def test_select_counts_faces_when_it_detects(tmp_path):
    from PIL import Image
    from skimage import data

    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(tmp_path / "one.png")
    Image.fromarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)).save(tmp_path / "two.png")
    (tmp_path / "none.png").write_bytes(b"not an image")
    out = tmp_path / "selection"
    assert main(["select", str(tmp_path), "--out", str(out), "--count", "2", "--min-face", "50",
                 "--min-sharpness", "0"]) == 1  # only one photo qualifies
    with open(out / "selection.csv") as stream:
        rows = {row["id"]: row for row in csv.DictReader(stream)}
    assert rows["one"]["chosen"] == "True" and rows["one"]["n_faces"] == "1"
    assert rows["two"]["reason"] == "2 faces (one is required)"
    assert "none.png" in rows["none"]["reason"] and "flamefit-select-" not in rows["none"]["reason"]
    assert abs(float(rows["one"]["yaw"])) < 30 and rows["one"]["band"]
