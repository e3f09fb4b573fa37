"""Per-parameter step sizes of the fit: warm-up and decay of a stage's learning rate, the
identity and expression factors, and even camera steps. Adam's first step moves each entry by
exactly its learning rate (times the sign of its gradient), which makes them checkable."""

from __future__ import annotations

import pytest
import torch

from flamefit.fitting import options as fo
from flamefit.fitting.optimizer import FitConfig, cosine_fraction, fit_batch, learning_rate_fraction
from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import synthetic_batch
from flamefit.flame.selection import select_model

RESOLUTION = 64


def test_learning_rate_fraction_rises_then_decays():
    assert learning_rate_fraction(0, 100, 0.05, 0) == 1.0
    assert learning_rate_fraction(0, 100, 1.0, 20) == pytest.approx(1 / 20)
    assert learning_rate_fraction(9, 100, 1.0, 20) == pytest.approx(10 / 20)
    assert learning_rate_fraction(19, 100, 1.0, 20) == pytest.approx(1.0)
    for step in (0, 10, 19, 50, 99):
        rise = min(1.0, (step + 1) / 20)
        assert learning_rate_fraction(step, 100, 0.05, 20) == pytest.approx(rise * cosine_fraction(step, 100, 0.05))
    assert learning_rate_fraction(99, 100, 0.05, 20) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def problem():
    scene = HeadScene.from_model_files(select_model(open_model=True))
    batch = synthetic_batch(scene, 2, RESOLUTION, seed=3, spread=0.5)
    start = scene.initial_parameters(2, "cpu")
    start.camera.copy_(batch.truth.camera)
    return scene, batch, start


def _assert_steps(moved: torch.Tensor, size: float) -> None:
    """Adam's first step is ``size * g / (|g| + 1e-8)``: ``size`` for all but tiny gradients."""
    moved = moved[moved > 0]
    assert moved.max().item() == pytest.approx(size, rel=1e-3)
    assert (moved <= size * (1 + 1e-3)).all()
    assert (moved > 0.98 * size).float().mean() > 0.8


def _first_step(scene, batch, start, **config) -> dict[str, torch.Tensor]:
    """How far each parameter moved in the full stage's first step."""
    moved = {}

    def hook(state) -> None:
        for name, value in state.params.tensors().items():
            moved[name] = (value.detach() - getattr(start, name)).abs()

    fit = FitConfig(resolution=RESOLUTION, rigid_steps=0, full_steps=1, convergence_tol=0.0, **config)
    fit_batch(scene, batch.images, batch.landmarks_px, torch.ones(2, 1, RESOLUTION, RESOLUTION), fit,
              init=start, progress=hook)
    return moved


def test_first_step_sizes_follow_the_factors_the_warm_up_and_the_camera_units(problem):
    scene, batch, start = problem
    lr = 0.01
    plain = _first_step(scene, batch, start, full_lr=lr)
    for name in ("shape", "expression", "pose", "texture"):
        _assert_steps(plain[name], lr)
    torch.testing.assert_close(plain["camera"], lr * scene.camera_step_scale(start, RESOLUTION), rtol=1e-3, atol=1e-7)
    factored = _first_step(scene, batch, start, full_lr=lr, shape_lr_factor=8.0, expression_lr_factor=4.0,
                           warmup_steps=4)
    for name, factor in (("shape", 8.0), ("expression", 4.0), ("pose", 1.0)):
        _assert_steps(factored[name], lr * factor / 4)
    raw = _first_step(scene, batch, start, full_lr=lr, even_camera_steps=False)
    torch.testing.assert_close(raw["camera"], torch.full_like(raw["camera"], lr), rtol=1e-3, atol=1e-7)


def test_only_the_refinement_of_a_result_takes_the_factors_and_the_warm_up():
    """Fits from zero or from the landmark regressor keep one learning rate (from zero, a faster
    identity can lock a mirrored rigid pose in: a render at yaw 66 degrees ended 11.5 px off with
    the factors, 0.55 px without); every schedule builds a FitConfig."""
    for schedule in (fo.REFERENCE_SCHEDULE, fo.REGRESSOR_SCHEDULE, fo.RESULT_SCHEDULE):
        FitConfig(**schedule.config_fields())
    assert (fo.RESULT_SCHEDULE.shape_lr_factor, fo.RESULT_SCHEDULE.expression_lr_factor) == (8.0, 4.0)
    assert fo.RESULT_SCHEDULE.warmup_steps == 20
    for schedule in (fo.REFERENCE_SCHEDULE, fo.REGRESSOR_SCHEDULE):
        assert (schedule.shape_lr_factor, schedule.expression_lr_factor, schedule.warmup_steps) == (1.0, 1.0, 0)
