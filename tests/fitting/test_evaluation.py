"""``flamefit evaluate``'s metrics, truth readers and outputs on hand-made result folders (no fit,
no torch): every truth format, hand-computed NMEs, bad and missing truth files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from flamefit.fitting import results
from flamefit.fitting.errors import BadLandmarksError
from flamefit.fitting.evaluation import (BAD_TRUTH, EVALUATED, FIT_FAILED, NO_TRUTH, TruthIndex,
                                        auc_percent_curve, box_size, draw_ced, evaluate_results,
                                        outer_inter_ocular_distance, region_residuals)
from flamefit.fitting.user_inputs import load_landmarks, save_pts
from flamefit.flame.landmark_sets import inter_ocular_distance
from flamefit.utils import UsageError, write_npz


def truth_points(seed: int = 0) -> np.ndarray:
    """(68, 2) points whose outer eye corners are 100 px apart (36 at (100, 200), 45 at
    (200, 200)) and whose bounding box is 200 x 200 px (so box size 200)."""
    rng = np.random.default_rng(seed)
    points = np.stack([rng.uniform(60, 240, 68), rng.uniform(110, 290, 68)], axis=1)
    points[0], points[16] = (50, 100), (250, 300)
    points[36], points[45] = (100, 200), (200, 200)
    return points


def make_result(root: Path, photo_id: str, detected: np.ndarray | None = None,
                fitted: np.ndarray | None = None, status: str = "done",
                detector: str = "dlib-hog", input_path: str | None = None, **extra) -> Path:
    """A result folder as ``flamefit fit`` writes it (report.json + landmarks.npz)."""
    folder = root / photo_id
    folder.mkdir(parents=True, exist_ok=True)
    photo = Path(input_path or f"/photos/{photo_id}.png")
    if status != "done":
        results.write_failure_report(folder, photo_id, photo, None, "no face found", 1.0)
        return folder
    write_npz(folder / results.LANDMARKS_FILE, detected=detected, fitted=fitted, **extra)
    results.write_report(folder, {**results.base_report(photo_id, photo, None), "status": "done",
                                  "landmarks_source": detector})
    return folder


def offset(points: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return points + np.array([dx, dy])


# --- metrics ------------------------------------------------------------------------------


def test_normalisers_by_hand():
    truth = truth_points()
    assert outer_inter_ocular_distance(truth) == pytest.approx(100.0)
    assert box_size(truth) == pytest.approx(200.0)
    assert outer_inter_ocular_distance(np.stack([truth, 2 * truth])) == pytest.approx([100, 200])
    # Not the eye-centre distance of landmark_sets (report.json's normaliser), which is shorter.
    assert inter_ocular_distance(truth) != pytest.approx(100.0)
    rect = np.zeros((68, 2))
    rect[:, 0] = np.linspace(0, 40, 68)
    rect[:, 1] = np.linspace(0, 90, 68)
    assert box_size(rect) == pytest.approx(60.0)  # sqrt(40 * 90)


def test_region_residuals_and_auc_by_hand():
    detected = truth_points()
    fitted = detected.copy()
    fitted[48:68] += (0, 10)  # only the mouth moves, by 10 px = 10 % of the 100 px IOD
    res = region_residuals(fitted, detected)
    assert res["mouth"] == pytest.approx(10.0)
    assert res["all"] == pytest.approx(10.0 * 20 / 68)
    assert res["contour"] == res["brows"] == res["nose"] == res["eyes"] == 0.0
    assert auc_percent_curve(np.array([0.0, 4.0, 8.0, 12.0]), 8.0) == pytest.approx(0.375)
    # Against a numerical integral of the step curve.
    errors = np.random.default_rng(3).uniform(0, 12, 50)
    x = np.linspace(0, 8, 80001)
    ced = (errors[None, :] <= x[:, None]).mean(axis=1)
    integral = float(((ced[1:] + ced[:-1]) / 2 * np.diff(x)).sum())
    assert auc_percent_curve(errors, 8.0) == pytest.approx(integral / 8, abs=1e-4)
    assert math.isnan(auc_percent_curve(np.zeros(0)))


# --- truth readers ------------------------------------------------------------------------


def test_every_truth_format_reads_the_same_points(tmp_path):
    truth = truth_points()
    np.save(tmp_path / "a.npy", truth)
    np.save(tmp_path / "a3.npy", np.concatenate([truth, np.ones((68, 1))], axis=1))
    save_pts(tmp_path / "b.pts", truth + 1)  # 300-W: 1-based
    (tmp_path / "c.txt").write_text("\n".join(f"{x} {y}" for x, y in truth))
    (tmp_path / "d.txt").write_text(" ".join(repr(float(v)) for v in truth.ravel()))
    savemat(tmp_path / "e.mat", {"pt3d_68": np.vstack([truth.T, np.zeros((1, 68))])})
    for name in ("a.npy", "a3.npy", "c.txt", "d.txt", "e.mat"):
        np.testing.assert_allclose(load_landmarks(tmp_path / name), truth, err_msg=name)
    np.testing.assert_allclose(load_landmarks(tmp_path / "b.pts", pts_one_based=True), truth, atol=1e-3)
    np.testing.assert_allclose(load_landmarks(tmp_path / "b.pts"), truth + 1, atol=1e-3)


def test_mat_of_the_wrong_layout_names_the_file_and_layout(tmp_path):
    savemat(tmp_path / "short.mat", {"pt3d_68": np.zeros((3, 21))})
    savemat(tmp_path / "other.mat", {"pt2d": np.zeros((2, 21))})
    with pytest.raises(BadLandmarksError, match=r"short\.mat.*shape \(3, 21\).*\(3, 68\)"):
        load_landmarks(tmp_path / "short.mat")
    with pytest.raises(BadLandmarksError, match=r"other\.mat.*no 'pt3d_68'.*pt2d"):
        load_landmarks(tmp_path / "other.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file")
    with pytest.raises(BadLandmarksError, match=r"junk\.mat"):
        load_landmarks(tmp_path / "junk.mat")


def test_truth_index_matches_by_id_then_stem(tmp_path):
    (tmp_path / "00000").mkdir()
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    for name in ("00000/00001.pts", "00000/00001.npy", "deep/x/photo7.mat", "one/twin.txt",
                 "two/twin.txt", "notes.md"):
        (tmp_path / name).write_text("")
    index = TruthIndex(tmp_path)
    match = index.find("00000/00001", "00001")
    assert match.rule == "id" and match.path == tmp_path / "00000/00001.npy"  # .npy preferred
    match = index.find("run/photo7", "photo7")
    assert match.rule == "stem" and match.path == tmp_path / "deep/x/photo7.mat"
    match = index.find("a/twin", "twin")
    assert match.path is None and "several truth files" in match.problem
    assert index.find("nothing", "nothing") is None


# --- the whole evaluation ---------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path):
    """Results for every truth format plus a bad, a missing and a failed one."""
    out, truth_dir = tmp_path / "results", tmp_path / "truth"
    truth = truth_points()
    detected, fitted = offset(truth, 3, 4), offset(truth, 5.4, 7.2)  # 5 px and 9 px off each point
    (truth_dir / "set").mkdir(parents=True)
    (truth_dir / "elsewhere").mkdir()
    np.save(truth_dir / "set" / "npy.npy", truth)
    save_pts(truth_dir / "set" / "pts.pts", truth + 1)
    (truth_dir / "set" / "txt.txt").write_text("\n".join(f"{x} {y}" for x, y in truth))
    savemat(truth_dir / "set" / "mat.mat", {"pt3d_68": np.vstack([truth.T, np.zeros((1, 68))])})
    np.save(truth_dir / "elsewhere" / "by_stem.npy", truth)
    np.save(truth_dir / "set" / "wrong.npy", truth[:67])
    for name in ("npy", "pts", "txt", "mat", "wrong", "missing"):
        make_result(out, f"set/{name}", detected, fitted,
                    detected_dense=np.zeros((478, 2)))  # unknown keys are ignored
    make_result(out, "renamed/x17", detected, fitted, input_path="/somewhere/by_stem.jpg",
                detector="mediapipe")
    make_result(out, "set/failed", status="failed")
    return out, truth_dir


def test_nme_of_every_format_and_every_failure(dataset):
    out, truth_dir = dataset
    evaluation = evaluate_results(out, truth_dir)
    records = {r.id: r for r in evaluation.records}
    assert set(records) == {"set/npy", "set/pts", "set/txt", "set/mat", "set/wrong", "set/missing",
                            "renamed/x17", "set/failed"}
    for photo_id in ("set/npy", "set/pts", "set/txt", "set/mat", "renamed/x17"):
        record = records[photo_id]
        assert record.status == EVALUATED, (photo_id, record.message)
        assert record.nme["iod_detected"] == pytest.approx(5.0, abs=1e-3)
        assert record.nme["iod_fitted"] == pytest.approx(9.0, abs=1e-3)
        assert record.nme["box_detected"] == pytest.approx(2.5, abs=1e-3)
        assert record.nme["box_fitted"] == pytest.approx(4.5, abs=1e-3)
        assert record.residuals["all"] == pytest.approx(4.0)  # fitted vs detected: 4 px / 100 px
    assert records["set/npy"].truth_match == "id"
    assert records["renamed/x17"].truth_match == "stem"
    assert records["renamed/x17"].truth_file.name == "by_stem.npy"
    wrong = records["set/wrong"]
    assert wrong.status == BAD_TRUTH and "wrong.npy" in wrong.message and "(68, 2)" in wrong.message
    assert "\n" not in wrong.message
    assert records["set/missing"].status == NO_TRUTH and records["set/missing"].residuals
    assert records["set/failed"].status == FIT_FAILED and "no face" in records["set/failed"].message
    assert not evaluation.complete

    summary = evaluation.summary
    assert summary["counts"] == {"results": 8, "evaluated": 5, "no truth": 1, "bad truth": 1,
                                 "fit failed": 1, "unreadable result": 0}
    assert summary["truth_match"] == {"id": 5, "stem": 1}  # set/wrong matched but is bad
    assert summary["detectors"] == {"dlib-hog": 6, "mediapipe": 1, "unknown": 1}
    assert summary["detected"]["nme_iod"] == {"n": 5, "mean": 5.0, "median": 5.0}
    assert summary["fitted"]["nme_box"]["mean"] == pytest.approx(4.5)
    assert summary["detected"]["failure_rate_iod"] == {"8": 0.0, "10": 0.0}
    assert summary["fitted"]["failure_rate_iod"] == {"8": 1.0, "10": 0.0}
    # A failed fit with a truth file counts as a failure in the stricter rate; set/failed has none.
    assert summary["fitted"]["failure_rate_iod_counting_failed_fits"] == {"8": 1.0, "10": 0.0}
    assert summary["detected"]["auc_iod_8"] == pytest.approx(1 - 5 / 8)
    assert summary["fitted"]["auc_iod_8"] == 0.0
    assert summary["residuals_iod"]["all"]["n"] == 7  # every readable result, truth or not
    assert "36 and 45" in summary["definitions"]["nme_iod"]


def test_outputs_are_written_and_readable(dataset):
    out, truth_dir = dataset
    evaluation = evaluate_results(out, truth_dir)
    folder = out / "evaluation"
    assert evaluation.out_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == ["ced.png", "per_image.csv", "summary.json"]
    rows = {row["id"]: row for row in csv.DictReader((folder / "per_image.csv").open())}
    assert len(rows) == 8
    assert float(rows["set/mat"]["nme_iod_detected"]) == pytest.approx(5.0)
    assert float(rows["set/mat"]["nme_box_fitted"]) == pytest.approx(4.5)
    assert float(rows["set/mat"]["iod_px"]) == pytest.approx(100.0)
    assert rows["set/mat"]["truth_match"] == "id" and rows["set/mat"]["truth_file"].endswith("mat.mat")
    assert rows["set/missing"]["status"] == "no truth" and rows["set/missing"]["nme_iod_fitted"] == ""
    assert float(rows["set/missing"]["residual_iod_mouth"]) == pytest.approx(4.0)
    assert json.loads((folder / "summary.json").read_text()) == json.loads(
        json.dumps(evaluation.summary))
    with Image.open(folder / "ced.png") as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    assert rgb.shape == (620, 900, 3)
    green = (rgb[..., 1] > 110) & (rgb[..., 0] < 60) & (rgb[..., 2] < 80)
    red = (rgb[..., 0] > 170) & (rgb[..., 1] < 70) & (rgb[..., 2] < 70)
    assert green.sum() > 200 and red.sum() > 200  # both curves (and their legend entries)
    # Rerun into another folder: the results' own evaluation folder is not taken for a result.
    again = evaluate_results(out, truth_dir, out_dir=out / "elsewhere")
    assert len(again.records) == 8


def test_pts_read_zero_based_on_request(tmp_path):
    truth = truth_points()
    out, truth_dir = tmp_path / "r", tmp_path / "t"
    truth_dir.mkdir()
    save_pts(truth_dir / "p.pts", truth + 1)
    make_result(out, "p", truth.copy(), truth.copy())
    assert evaluate_results(out, truth_dir).records[0].nme["iod_detected"] == pytest.approx(0, abs=1e-3)
    shifted = evaluate_results(out, truth_dir, pts_one_based=False).records[0]
    assert shifted.nme["iod_detected"] == pytest.approx(100 * math.sqrt(2) / 100, abs=1e-3)
    assert evaluate_results(out, truth_dir).complete


def test_usage_errors(tmp_path):
    out, truth_dir = tmp_path / "r", tmp_path / "t"
    truth_dir.mkdir()
    with pytest.raises(UsageError, match="not a folder"):
        evaluate_results(out, truth_dir)
    out.mkdir()
    with pytest.raises(UsageError, match="no `flamefit fit` results"):
        evaluate_results(out, truth_dir)
    make_result(out, "a", truth_points(), truth_points())
    with pytest.raises(UsageError, match="--truth .*not a folder"):
        evaluate_results(out, tmp_path / "absent")
    with pytest.raises(UsageError, match="holds no"):
        evaluate_results(out, truth_dir)
    np.save(truth_dir / "b.npy", truth_points())
    with pytest.raises(UsageError, match="no truth file matches any .*'a'.*'b'"):
        evaluate_results(out, truth_dir)


def test_curve_picture_without_images_and_with_large_errors():
    empty = draw_ced({"detected": np.zeros(0), "fitted": np.zeros(0)})
    assert empty.shape == (620, 900, 3) and empty.dtype == np.uint8
    wide = draw_ced({"detected": np.linspace(0, 40, 30)}, size=(600, 400))
    assert wide.shape == (400, 600, 3)
