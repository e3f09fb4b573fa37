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
    # the short schedule is shorter: that is what a good start buys
    assert sum(fo.REGRESSOR_STEPS) * 2 <= sum(fo.REFERENCE_STEPS)


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
