"""The prior that keeps a regressor-started fit's head rotation near the regressor's estimate."""

from __future__ import annotations

import math

import pytest
import torch

from flamefit.fitting import options as fo
from flamefit.fitting.optimizer import FitConfig, fit_batch, rotation_distance2
from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import synthetic_batch
from flamefit.flame.lbs import batch_rodrigues
from flamefit.flame.pose_layout import GLOBAL
from flamefit.flame.selection import select_model

RESOLUTION = 224


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    relative = batch_rodrigues(a) @ batch_rodrigues(b).transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def test_rotation_distance_is_two_sin_squared_of_half_the_angle():
    axis = torch.tensor([[0.3, -0.8, 0.5]])
    axis = axis / axis.norm()
    anchor = batch_rodrigues(torch.tensor([[0.2, 1.1, -0.1]]))
    for degrees in (0.0, 10.0, 90.0, 170.0):
        angle = math.radians(degrees)
        rotated = batch_rodrigues(axis * angle) @ anchor
        expected = 2 * math.sin(angle / 2) ** 2
        assert rotation_distance2(rotated, anchor).item() == pytest.approx(expected, abs=1e-5)
    # about half the squared angle for small angles, and a finite gradient at the anchor itself
    small = math.radians(5.0)
    assert rotation_distance2(batch_rodrigues(axis * small) @ anchor, anchor).item() == pytest.approx(
        small**2 / 2, rel=0.01)
    pose = torch.tensor([[0.2, 1.1, -0.1]], requires_grad=True)
    rotation_distance2(batch_rodrigues(pose), anchor).sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().max() < 1e-5


@pytest.fixture(scope="module")
def turned_start():
    """A render's exact landmarks and a start that is the truth turned 12 degrees about y."""
    scene = HeadScene.from_model_files(select_model(open_model=True))
    problem = synthetic_batch(scene, 1, RESOLUTION, seed=5, spread=0.5)
    start = problem.truth.detach()
    turn = batch_rodrigues(torch.tensor([[0.0, math.radians(12.0), 0.0]]))
    start.pose[:, GLOBAL] = _axis_angle(turn @ batch_rodrigues(problem.truth.pose[:, GLOBAL]))
    return scene, problem, start


def _axis_angle(rotation: torch.Tensor) -> torch.Tensor:
    from flamefit.fitting.landmark_regressor import axis_angle_from_rotation

    return axis_angle_from_rotation(rotation)


def _fit(scene, problem, start, weight: float):
    config = FitConfig(resolution=RESOLUTION, rigid_steps=120, full_steps=0, rigid_lr=0.01,
                       start_rotation_prior=weight)
    skin = torch.ones(1, 1, RESOLUTION, RESOLUTION)
    outcome = fit_batch(scene, problem.images, problem.landmarks_px, skin, config, init=start)
    return (_angle_deg(outcome.params.pose[:, GLOBAL], problem.truth.pose[:, GLOBAL]).item(),
            _angle_deg(outcome.params.pose[:, GLOBAL], start.pose[:, GLOBAL]).item())


@pytest.mark.slow
def test_the_prior_holds_the_rotation_between_the_start_and_what_the_points_say(turned_start):
    """With a free shape and expression the points barely fix the head's rotation: the rigid
    stage (mean shape) turns it back to the truth, a prior keeps it nearer the start, the more
    the stronger; the points are explained either way."""
    scene, problem, start = turned_start
    free_to_truth, _ = _fit(scene, problem, start, 0.0)
    default_to_truth, default_to_start = _fit(scene, problem, start, fo.REGRESSOR_SCHEDULE.start_rotation_prior)
    _, strong_to_start = _fit(scene, problem, start, 1000.0)
    print("to the truth: free", free_to_truth, "default prior", default_to_truth,
          "; strong prior to the start", strong_to_start)
    assert free_to_truth < 2.0
    assert free_to_truth + 2.0 < default_to_truth < 12.0 - 2.0  # part of the way back
    assert default_to_start < 12.0 - 2.0
    assert strong_to_start < 1.0


def test_no_start_no_prior():
    """From zero (no start) the weight changes nothing: the fit is bit for bit the same."""
    scene = HeadScene.from_model_files(select_model(open_model=True))
    problem = synthetic_batch(scene, 1, 64, seed=2)
    skin = torch.ones(1, 1, 64, 64)
    fits = [fit_batch(scene, problem.images, problem.landmarks_px, skin,
                      FitConfig(resolution=64, rigid_steps=10, full_steps=2, start_rotation_prior=w))
            for w in (0.0, 5.0)]
    assert torch.equal(fits[0].params.pose, fits[1].params.pose)


def test_only_the_regressor_schedule_has_the_prior():
    assert fo.REGRESSOR_SCHEDULE.start_rotation_prior > 0
    assert fo.REFERENCE_SCHEDULE.start_rotation_prior == 0  # zero and other tools' outputs
    assert fo.RESULT_SCHEDULE.start_rotation_prior == 0
    for schedule in (fo.REGRESSOR_SCHEDULE, fo.REFERENCE_SCHEDULE, fo.RESULT_SCHEDULE):
        config = FitConfig(**schedule.config_fields())
        assert (config.rigid_steps, config.full_steps) == schedule.steps
        assert config.start_rotation_prior == schedule.start_rotation_prior
