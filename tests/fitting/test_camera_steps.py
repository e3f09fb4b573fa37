"""Even optimiser steps on the camera: Adam moves every parameter by about its learning rate,
so the camera's steps are taken in units where each parameter moves the image alike
(:meth:`flamefit.renderer.camera_models.CameraModel.step_scale`)."""

from __future__ import annotations

import pytest
import torch

from flamefit.fitting.optimizer import FitConfig, fit_batch
from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import synthetic_batch
from flamefit.flame.selection import select_model

RESOLUTION = 224


@pytest.fixture(scope="module")
def problem():
    scene = HeadScene.from_model_files(select_model(open_model=True))
    return scene, synthetic_batch(scene, 2, RESOLUTION, seed=11, spread=0.5)


def _error_after(scene, batch, steps: int, scaled: bool, stage: str) -> torch.Tensor:
    """Mean landmark distance (crop px) after ``steps`` steps of one stage started at the truth."""
    rigid, full = (steps, 0) if stage == "rigid" else (0, steps)
    config = FitConfig(resolution=RESOLUTION, rigid_steps=rigid, full_steps=full, rigid_lr=0.02, full_lr=0.02,
                       convergence_tol=0.0, even_camera_steps=scaled)
    seen = []

    def hook(state) -> None:
        with torch.no_grad():
            seen.append((scene.landmarks_px(state.params, RESOLUTION) - batch.landmarks_px).norm(dim=-1).mean(dim=1))

    start = batch.truth.detach()
    start.camera[:, 1:] += 0.02 / start.camera[:, :1]  # the face 1 % of the crop (2.2 px) aside
    skin = torch.ones(2, 1, RESOLUTION, RESOLUTION)
    fit_batch(scene, batch.images, batch.landmarks_px, skin, config, init=start, progress=hook)
    return torch.stack(seen).max(dim=0).values  # the worst point of the run, per image


@pytest.mark.slow
def test_a_start_near_the_truth_stays_near_it(problem):
    """Started 1 % of the crop from the exact parameters, a few rigid steps at a refinement's
    learning rate (0.02) keep the landmarks within a few pixels of the start; raw steps on the camera (a
    translation in metres: 0.02 m is ~25 px here) throw the face tens of pixels away."""
    scene, batch = problem
    even = _error_after(scene, batch, 6, True, "rigid")
    raw = _error_after(scene, batch, 6, False, "rigid")
    print("rigid: worst landmark error over 6 steps, px: even", even.tolist(), "raw", raw.tolist())
    assert (even < 6.0).all()  # the start is 3.1 px off
    assert (raw > 15.0).all()


@pytest.mark.slow
def test_the_full_stage_moves_the_camera_by_its_even_steps(problem):
    """In the full stage the other parameters also move (pose, expression); the camera's raw
    steps still more than double how far the face is thrown in the first steps."""
    scene, batch = problem
    even = _error_after(scene, batch, 6, True, "full")
    raw = _error_after(scene, batch, 6, False, "full")
    print("full: worst landmark error over 6 steps, px: even", even.tolist(), "raw", raw.tolist())
    assert (raw > 2.0 * even).all()
