"""Where fits start (``--init auto|zero|regressor|FILE``) and the schedule each start gets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flamefit.fitting import options as fo
from flamefit.utils import UsageError


def test_steps_follow_the_start_unless_given():
    assert fo.resolve_steps(None, None, fo.REGRESSOR_INIT) == fo.REGRESSOR_STEPS
    assert fo.resolve_steps(None, None, fo.ZERO_INIT) == fo.REFERENCE_STEPS == (200, 800)
    assert fo.resolve_steps(None, None, "file") == fo.REFERENCE_STEPS
    assert fo.resolve_steps(7, None, fo.REGRESSOR_INIT) == (7, fo.REGRESSOR_STEPS[1])
    assert fo.resolve_steps(3, 4, fo.ZERO_INIT) == (3, 4)
    assert fo.resolve_steps(None, None, fo.RESULT_INIT) == fo.RESULT_STEPS
    # the short schedules are shorter: that is what a good start buys
    assert sum(fo.REGRESSOR_STEPS) * 3 <= sum(fo.REFERENCE_STEPS)
    assert sum(fo.RESULT_STEPS) * 4 <= sum(fo.REFERENCE_STEPS)


def test_the_learning_rate_follows_the_start_even_with_steps_given():
    reference = fo.resolve_schedule(None, None, fo.ZERO_INIT)
    assert (reference.full_lr, reference.final_lr_fraction) == (0.005, 1.0)  # the reference's Adam
    result = fo.resolve_schedule(0, 40, fo.RESULT_INIT)
    assert result.steps == (0, 40)
    assert (result.full_lr, result.final_lr_fraction) == (fo.RESULT_SCHEDULE.full_lr,
                                                          fo.RESULT_SCHEDULE.final_lr_fraction)
    assert result.full_lr > reference.full_lr and result.final_lr_fraction < 1.0


def test_init_keywords_and_the_default():
    assert fo.FitOptions().init == fo.AUTO_INIT
    assert (fo.FitOptions().rigid_steps, fo.FitOptions().full_steps) == (None, None)
    assert fo.init_keyword("auto") == "auto" and fo.init_keyword(None) == "zero"
    assert fo.init_keyword("regressor") == "regressor"
    assert fo.init_keyword("deca/codedict.npy") is None


def test_schedule_check_accepts_the_default_and_refuses_bad_counts():
    fo.check_schedule(224, None, None)
    fo.check_schedule(224, 0, 5)
    with pytest.raises(UsageError, match="--iters"):
        fo.check_schedule(224, -1, 10)
    with pytest.raises(UsageError, match="--iters"):
        fo.check_schedule(224, 0, 0)


def test_auto_starts_from_the_regressor_only_when_one_is_ready(demo_head_dir, monkeypatch):
    from flamefit.fitting.batch import fit_start
    from flamefit.flame.selection import select_model

    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent / "empty-cache"))
    open_model = SimpleNamespace(model_file=select_model(open_model=True).model)
    start, said = fit_start(open_model, "auto")
    assert (start, said) == ("regressor", "regressor (auto)")
    assert open_model.landmark_regressor is not None  # loaded once, kept for the batches
    demo = SimpleNamespace(model_file=demo_head_dir / "generic_model.pkl")
    start, said = fit_start(demo, "auto")  # no regressor trained for it: none is trained now
    assert start == "zero" and "train-landmark-regressor" in said
    assert fit_start(demo, "zero") == ("zero", "zero")
    assert fit_start(demo, "regressor") == ("regressor", "regressor")
    assert fit_start(demo, "some/deca_output.npy")[0] == "file"


def test_flamefits_own_results_start_a_refinement(tmp_path):
    from flamefit.fitting.batch import fit_start

    demo = SimpleNamespace(model_file=None)
    run = tmp_path / "regress_out"
    (run / "photo").mkdir(parents=True)
    (run / "photo" / "params.npz").write_bytes(b"")
    assert fit_start(demo, run / "photo")[0] == "result"  # one photo's result folder
    assert fit_start(demo, run / "photo" / "params.npz")[0] == "result"
    (run / "summary.csv").write_text("id\n")
    assert fit_start(demo, run)[0] == "result"  # a run folder
    (tmp_path / "emoca").mkdir()
    (tmp_path / "emoca" / "shape.npy").write_bytes(b"")
    assert fit_start(demo, tmp_path / "emoca")[0] == "file"
    assert fit_start(demo, tmp_path / "codedict.npy")[0] == "file"
