"""``flamefit evaluate`` on the command line: exit statuses, the printed table and one-line errors
(hand-made result folders; no fit, no torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from flamefit.cli import main
from flamefit.fitting.user_inputs import save_pts
from tests.fitting.test_evaluation import make_result, offset, truth_points


def test_all_evaluated_exits_0_and_prints_the_table(tmp_path, capsys):
    out, truth_dir = tmp_path / "results", tmp_path / "truth"
    truth_dir.mkdir()
    truth = truth_points()
    make_result(out, "a", offset(truth, 3, 4), offset(truth, 0, 2))
    save_pts(truth_dir / "a.pts", truth + 1)
    status = main(["evaluate", str(out), "--truth", str(truth_dir), "--out", str(tmp_path / "ev")])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "1 results: 1 evaluated (truth matched by id 1, by stem 0)" in printed
    detected_row = next(line for line in printed.splitlines() if line.startswith("detected"))
    assert detected_row.split()[1:5] == ["5.00", "5.00", "2.50", "2.50"]
    assert "fit residuals" in printed and "dlib-hog (1)" in printed
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"per_image.csv", "summary.json", "ced.png"}


def test_missing_and_bad_truth_exit_1_naming_each(tmp_path, capsys):
    out, truth_dir = tmp_path / "results", tmp_path / "truth"
    truth_dir.mkdir()
    truth = truth_points()
    for name in ("good", "bad", "none"):
        make_result(out, name, truth.copy(), truth.copy())
    np.save(truth_dir / "good.npy", truth)
    np.save(truth_dir / "bad.npy", np.zeros((5, 2)))
    status = main(["evaluate", str(out), "--truth", str(truth_dir)])
    printed = capsys.readouterr().out
    assert status == 1
    bad = [line for line in printed.splitlines() if line.startswith("bad truth: bad: ")]
    assert len(bad) == 1 and "bad.npy" in bad[0] and "(68, 2)" in bad[0]
    assert any(line.startswith("no truth: none: ") for line in printed.splitlines())
    assert (out / "evaluation" / "summary.json").is_file()


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    status = main(["evaluate", str(tmp_path / "absent"), "--truth", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "flamefit evaluate: error:" in err
    make_result(tmp_path / "r", "a", truth_points(), truth_points())
    status = main(["evaluate", str(tmp_path / "r"), "--truth", str(tmp_path / "no-truth")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--truth" in err
    assert main(["evaluate", str(tmp_path / "r")]) == 2  # --truth is required
    assert "--truth" in capsys.readouterr().err


def test_evaluate_imports_no_torch(tmp_path):
    out, truth_dir = tmp_path / "results", tmp_path / "truth"
    truth_dir.mkdir()
    make_result(out, "a", truth_points(), truth_points())
    np.save(truth_dir / "a.npy", truth_points())
    code = ("import sys\nfrom flamefit.cli import main\n"
            "main(['evaluate', '--help'])\n"
            f"status = main(['evaluate', {str(out)!r}, '--truth', {str(truth_dir)!r}])\n"
            "print('STATUS', status, 'TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--pts-one-based" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "STATUS 0 NO TORCH"
