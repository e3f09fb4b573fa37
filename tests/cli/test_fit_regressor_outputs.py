"""``flamefit fit --init`` on every regressor format the tools write, and ``--shape-prior``:
one run over copies of the astronaut photo, each with another tool's output, two with wrong
files (which fail alone, with one line), on the procedural test head (which stands in for FLAME,
so the coefficients are used)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from flamefit.cli import main
from tests.fitting import regressor_files as rf

pytestmark = pytest.mark.slow  # a tiny fit of a dozen photos end to end


@pytest.fixture(autouse=True)
def no_flame(demo_head_dir, monkeypatch):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))


def write_inits(inits):
    """Each format under the id of its photo (``<id>.<ext>`` or ``<id>/``); the truths."""
    truths = {}
    for name, write in {"deca": lambda f: rf.deca_codedict(f, "npy"),
                        "deca_pkl": lambda f: rf.deca_codedict(f, "pkl"),
                        "smirk": rf.smirk_outputs, "metrical": rf.metrical_frame,
                        "pixel3dmm": rf.pixel3dmm_frame, "fht": rf.flame_head_tracker_npz,
                        "ringnet": rf.ringnet_params, "ours": rf.ours_params}.items():
        scratch = inits / f".{name}"
        scratch.mkdir()
        path, truths[name] = write(scratch)
        shutil.move(path, inits / f"{name}{path.suffix}")
    path, frames = rf.vhap_params(inits, frames=("00000", "vhap"))
    path.rename(inits / "vhap.npz")
    truths["vhap"] = frames[1]
    for name, write in {"emoca": rf.emoca_folder, "emica": rf.emica_folder, "mica": rf.mica_folder}.items():
        truths[name] = write(inits / name)[1]
    wrong = rf.deca_codedict(inits / ".deca", "npy", seed=3)[0]  # reuses the scratch folder
    code = np.load(wrong, allow_pickle=True).item()
    code["exp"] = torch.zeros(1, 40)
    np.save(inits / "wrong_size.npy", code, allow_pickle=True)
    (inits / "garbage.npy").write_bytes(b"\x93NUMPY this is not an array at all" * 4)
    return truths


FORMATS = {"deca": "DECA codedict", "deca_pkl": "DECA codedict", "smirk": "SMIRK dict",
           "metrical": "metrical-tracker .frame", "pixel3dmm": "pixel3dmm .frame",
           "fht": "flame-head-tracker", "ringnet": "RingNet params", "ours": "flamefit params.npz",
           "vhap": "VHAP tracked_flame_params", "emoca": "EMOCA folder", "emica": "EMICA folder",
           "mica": "MICA identity"}


def test_every_format_refines_and_wrong_files_fail_alone(tmp_path, demo_head_dir):
    photos, inits = tmp_path / "photos", tmp_path / "inits"
    photos.mkdir(), inits.mkdir()
    astronaut = Image.fromarray(data.astronaut())
    for name in list(FORMATS) + ["wrong_size", "garbage"]:
        astronaut.save(photos / f"{name}.png")
    truths = write_inits(inits)
    prior = inits / "mica" / "identity.npy"
    out = tmp_path / "out"
    status = main(["fit", str(photos), "--out", str(out), "--init", str(inits), "--shape-prior", str(prior),
                   "--flame-dir", str(demo_head_dir), "--iters", "5,5", "--resolution", "128",
                   "--batch-size", "7", "--device", "cpu"])
    assert status == 1  # two photos failed, the others were fitted
    rows = {row["id"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    assert rows["wrong_size"]["status"] == "failed" and "\n" not in rows["wrong_size"]["reason"]
    assert "DECA codedict: `exp` has 40 values, expected 50 (DECA's expression code)" in rows["wrong_size"]["reason"]
    assert rows["garbage"]["status"] == "failed" and "garbage.npy: cannot read it" in rows["garbage"]["reason"]
    for name, fmt in FORMATS.items():
        assert rows[name]["status"] == "fitted", (name, rows[name]["reason"])
        report = json.loads((out / name / "report.json").read_text())
        assert report["notes"][0].startswith(f"init: {fmt} ("), (name, report["notes"])
        assert report["shape_prior"].endswith("identity.npy (MICA identity)")
        with np.load(out / name / "params.npz") as params:
            truth = truths[name]
            if "pose" in truth:  # the jaw is the tool's: five full steps at lr 0.005 move it little
                np.testing.assert_allclose(params["pose"][6:9], truth["pose"][6:9], atol=0.04, err_msg=name)
            # the shape starts at the tool's (truncated to the test head's 100)
            np.testing.assert_allclose(params["shape"][:5], truth["shape"][:5], atol=0.04, err_msg=name)
    notes = json.loads((out / "smirk" / "report.json").read_text())["notes"][0]
    assert "shape 300 -> 100" in notes and "SMIRK's rule" in notes
    assert "y-down" in json.loads((out / "ringnet" / "report.json").read_text())["notes"][0]


def test_a_flame_shape_prior_with_the_open_model_is_a_usage_error(tmp_path, capsys):
    folder, _ = rf.mica_folder(tmp_path / "mica")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    status = main(["fit", str(photo), "--out", str(tmp_path / "out"), "--shape-prior",
                   str(folder / "identity.npy"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "--shape-prior" in err[0] and "is not FLAME" in err[0]
