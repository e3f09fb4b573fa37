"""The staged, batched analysis-by-synthesis optimiser.

B images are fitted at once as B independent problems: every loss is kept per image, the sum
is back-propagated, and each image has its own best-so-far parameters, convergence test and
divergence guard (a non-finite loss restores that image's best parameters, marks it diverged
and freezes it while the others go on).

Stages (the reference implementation's schedule by default: Adam, 200 + 800 steps at 224²):

0. closed form from the 51 inner landmarks (:mod:`flamefit.fitting.landmark_pose`): the head's
   rotation, then the camera's scale and translation (the reference starts unturned: camera only);
1. rigid: global pose + camera on the 51 inner landmarks;
2. full: shape, expression, neck/jaw/eye pose, albedo coefficients, SH light, camera (and an
   optional per-texel albedo offset) on all 68 landmarks (dynamic contour) + a masked robust
   photometric loss + Gaussian priors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from flamefit.fitting.dense_embedding import REGIONS
from flamefit.fitting.landmark_pose import camera_from_landmarks, pose_from_landmarks
from flamefit.fitting.losses import (
    gaussian_prior,
    landmark_loss,
    photometric_error,
    robust_landmark_loss,
    robust_photometric_loss,
    smoothness_loss,
)
from flamefit.fitting.parameters import FitParameters
from flamefit.fitting.scene import HeadScene
from flamefit.flame.landmark_sets import INNER
from flamefit.flame.lbs import batch_rodrigues
from flamefit.flame.pose_layout import EYES, GLOBAL, N_POSE, NECK_AND_JAW


@dataclass
class FitConfig:
    """Schedule and weights of a fit.

    Dense points (MediaPipe's, when the detector gives them and the scene has an embedding) add
    a robust term (:func:`flamefit.fitting.losses.robust_landmark_loss`, ``dense_scale`` in
    normalised crop units, ~5 % of the inter-ocular distance at 224²) weighted per region
    (``dense_region_weights``; the irises move the eye pose, whose prior is then weaker) and by
    each point's calibration precision ``(1 / (0.5 + spread))^2``.

    The schedule follows the reference implementation (Adam, 200 rigid + 800 full steps at
    224²). The photometric weight is lower than the reference's 8 because our robust term is
    averaged over the masked pixels only (the reference averages over the whole image); the eye
    poses get a stronger prior because landmarks barely constrain them. The identity and
    expression priors (5e-4, the reference uses 1e-4) were chosen on real photos fitted with the
    demo head: weaker priors let the photometric term push coefficients into implausible
    shapes for a few tenths of a percent of landmark error.

    ``final_lr_fraction`` below 1 makes each stage's learning rate fall from its value to that
    fraction of it by the stage's last step (:func:`cosine_fraction`); 1, the default, keeps the
    reference's constant rate. The short schedules that refine a good start use it
    (:mod:`flamefit.fitting.options`).

    ``start_rotation_prior`` (0: off) adds ``weight * 2 sin^2(angle / 2)`` (about half the
    squared angle, radians) between the head's global rotation and the start's, in both stages,
    when the fit is given a start: a Gaussian prior centred on a regressor's pose estimate. The
    landmark regressor was trained on the model's priors and sees all points at once; on steep
    views the fit alone follows a detector's biased points with shape and expression and ends
    further from the true rotation than the regressor's start (figures in
    :mod:`flamefit.fitting.options`).

    ``even_camera_steps`` (on by default) takes the camera's optimiser steps in units where each
    of its parameters moves the image alike (:meth:`HeadScene.camera_step_scale`): a step of the
    learning rate shifts the face by that fraction of half the crop or scales it by that
    fraction. Adam moves every parameter by about its learning rate whatever its units, and the
    camera's translation is in metres: raw steps of 0.005-0.02 threw the face 6-26 px (at 224²)
    per step, and the fit spent its steps recovering: from zero, 1000 steps ended 0.599 px from
    the true landmarks instead of 0.402 (median of 32 renders; ``benchmarks/README.md``, "Even
    camera steps"). ``False`` restores the raw steps, for comparisons.

    ``shape_lr_factor`` and ``expression_lr_factor`` multiply the full stage's learning rate for
    the identity and expression coefficients (1: the reference's one rate). A step of 0.02 on
    every identity coefficient moves the landmarks ~0.1 px, on the pose's ~5 px, so at one rate
    the face's shape is the last thing to settle. The refinement of a start whose pose is right
    (a flamefit result; :data:`flamefit.fitting.options.RESULT_SCHEDULE`) uses 8 and 4; from
    zero the faster identity can lock a wrong rigid pose in (figures in
    :class:`flamefit.fitting.options.FitOptions`).

    ``rotation_from_landmarks`` (on by default) starts a fit that has no start (``init=None``)
    with the head turned and framed onto the detected points in closed form
    (:func:`flamefit.fitting.landmark_pose.pose_from_landmarks`) instead of the reference's
    unturned head with a camera only. From the unturned head the rigid stage must turn a profile
    through most of a quarter turn by gradient steps, across the symmetric pose where the points
    cannot tell which way to go; on steep views it could end facing away from the camera
    (figures in ``benchmarks/README.md``, "Closed-form rotation"). ``False`` restores the
    unturned start, for comparisons.

    ``warmup_steps`` makes each stage's learning rate rise linearly over its first steps (a
    refinement's higher rate would otherwise throw a good start off at its first steps, when
    Adam's steps are the learning rate whatever the gradient).

    ``shape_prior_mean`` centres the identity prior on a given shape instead of 0 (``flamefit
    fit --shape-prior``, e.g. MICA's identity; as many values as the model's shape
    coefficients), as the trackers that start from MICA do.
    """

    resolution: int = 224
    rigid_steps: int = 200
    full_steps: int = 800
    rigid_lr: float = 0.01
    full_lr: float = 0.005
    landmark_weight: float = 1.0
    dense_weight: float = 1.0
    dense_scale: float = 0.05
    dense_region_weights: tuple[tuple[str, float], ...] = (
        ("face", 0.5), ("brows", 1.0), ("eyes", 1.0), ("irises", 1.0), ("nose", 1.0), ("lips", 1.0))
    photometric_weight: float = 2.0
    photometric_scale: float = 0.1
    shape_prior: float = 5e-4
    shape_prior_mean: tuple[float, ...] | None = None
    expression_prior: float = 5e-4
    texture_prior: float = 1e-4
    pose_prior: float = 1e-3
    eye_pose_prior: float = 0.1
    eye_pose_prior_with_irises: float = 0.01
    texture_offset: bool = False
    offset_lr: float = 0.005
    offset_smoothness: float = 10.0
    offset_magnitude: float = 0.1
    convergence_window: int = 50
    convergence_tol: float = 1e-4
    final_lr_fraction: float = 1.0
    warmup_steps: int = 0
    even_camera_steps: bool = True
    shape_lr_factor: float = 1.0
    expression_lr_factor: float = 1.0
    start_rotation_prior: float = 0.0
    rotation_from_landmarks: bool = True


@dataclass
class FitOutcome:
    """Result of :func:`fit_batch` (tensors on the fit's device, batch-first).

    Attributes:
        params: best parameters per image.
        texture_offset: ``(B, 3, T, T)`` per-texel albedo offset, or None.
        status: per image ``"done"`` or ``"diverged: <stage> step <n>"``.
        losses: per stage name, ``(B,)`` best total loss.
        landmarks: ``(B, 68, 2)`` fitted landmarks, crop pixels.
        landmark_error: ``(B,)`` mean distance to the targets in crop pixels.
        dense: ``(B, K, 2)`` fitted embedded dense points, crop pixels (None without them).
        photometric_error: ``(B,)`` masked mean absolute RGB error in [0, 1].
        steps: per stage, steps actually run (early stop when every image converged).
    """

    params: FitParameters
    texture_offset: torch.Tensor | None
    status: list[str]
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    landmarks: torch.Tensor | None = None
    landmark_error: torch.Tensor | None = None
    photometric_error: torch.Tensor | None = None
    steps: dict[str, int] = field(default_factory=dict)
    dense: torch.Tensor | None = None


@dataclass
class FitStep:
    """What the ``progress`` hook of :func:`fit_batch` gets after each optimiser step.

    Attributes:
        stage: ``"rigid"`` or ``"full"``.
        step: steps done in this stage (1-based).
        steps: the stage's step budget.
        params: the current parameters (on the fit's device; detach before keeping them).
        texture_offset: the current per-texel albedo offset, or None.
    """

    stage: str
    step: int
    steps: int
    params: FitParameters
    texture_offset: torch.Tensor | None


def cosine_fraction(step: int, steps: int, final: float) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps`` as a fraction of the stage's:
    1 at the first step, ``final`` at the last, a half cosine in between."""
    if steps <= 1:
        return 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * step / (steps - 1)))


def learning_rate_fraction(step: int, steps: int, final: float, warmup: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps`` as a fraction of the stage's:
    a linear rise over the first ``warmup`` steps (``(step + 1) / warmup``) times
    :func:`cosine_fraction`'s decay to ``final``."""
    rise = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return rise * cosine_fraction(step, steps, final)


def normalised(points_px: torch.Tensor, resolution: int) -> torch.Tensor:
    """Crop pixels -> ``[-1, 1]`` across the crop (loss coordinates); ``(..., 2)``."""
    return points_px / resolution * 2.0 - 1.0


class _Tracker:
    """Per-image best parameters, convergence and divergence for one stage.

    Everything stays on the fit's device: the host reads it only every ``window`` steps (to stop
    a stage early) and at the end, so a GPU fit does not wait on the CPU every step.
    """

    def __init__(self, params: FitParameters, offset: torch.Tensor | None, window: int, tol: float):
        batch = params.shape.shape[0]
        device = params.shape.device
        self.best = params.detach()
        self.best_offset = None if offset is None else offset.detach().clone()
        self.best_loss = torch.full((batch,), math.inf, device=device)
        self.window_start = self.best_loss.clone()
        self.active = torch.ones(batch, dtype=torch.bool, device=device)
        self.diverged_at = torch.full((batch,), -1, dtype=torch.long, device=device)
        self.window, self.tol = window, tol

    def update(self, step: int, loss: torch.Tensor, params: FitParameters,
               offset: torch.Tensor | None) -> None:
        loss = loss.detach()
        finite = torch.isfinite(loss)
        self.diverged_at = torch.where(~finite & self.active, step, self.diverged_at)
        self.active &= finite
        improved = finite & (loss < self.best_loss)
        self.best_loss = torch.where(improved, loss, self.best_loss)
        self.best = params.detach().select(improved, self.best)
        if offset is not None:
            keep = improved.view(-1, 1, 1, 1)
            self.best_offset = torch.where(keep, offset.detach(), self.best_offset)
        if (step + 1) % self.window == 0:
            gain = (self.window_start - self.best_loss) / self.best_loss.abs().clamp_min(1e-12)
            converged = torch.isfinite(self.window_start) & (gain < self.tol)
            self.active &= ~converged
            self.window_start = self.best_loss.clone()

    def any_active(self, step: int) -> bool:
        """Whether any image is still being fitted; read from the device once per window."""
        if (step + 1) % self.window != 0:
            return True
        return bool(self.active.any())

    def restore_inactive(self, params: FitParameters, offset: torch.Tensor | None) -> None:
        """Put frozen images back to their best parameters (Adam's momentum would move them)."""
        self._restore(~self.active, params, offset)

    def restore_best(self, params: FitParameters, offset: torch.Tensor | None) -> None:
        """Put every image back to its best parameters (end of a stage)."""
        self._restore(torch.ones_like(self.active), params, offset)

    def _restore(self, which: torch.Tensor, params: FitParameters, offset: torch.Tensor | None) -> None:
        with torch.no_grad():
            restored = self.best.select(which, params)
            for name, value in params.tensors().items():
                value.copy_(getattr(restored, name))
            if offset is not None:
                offset.copy_(torch.where(which.view(-1, 1, 1, 1), self.best_offset, offset))


def _run_stage(
    name: str,
    steps: int,
    params: FitParameters,
    offset: torch.Tensor | None,
    groups: list[dict],
    objective: Callable[[FitParameters, torch.Tensor | None], torch.Tensor],
    config: FitConfig,
    progress: Callable[[FitStep], None] | None,
    grad_masks: dict[int, torch.Tensor] | None = None,
    bounds: dict[int, tuple[float, float]] | None = None,
    step_scales: dict[int, torch.Tensor] | None = None,
) -> tuple[_Tracker, int]:
    """Run one stage. These map ``id(tensor)`` to: ``grad_masks``, a 0/1 mask of the entries it
    may move; ``bounds``, the range each step projects its entries back into; ``step_scales``,
    a per-entry factor on each of Adam's steps (a per-entry learning rate: Adam's step does not
    depend on the gradient's scale, so the parameter's units set it)."""
    bounds = bounds or {}
    grad_masks = grad_masks or {}
    step_scales = step_scales or {}
    tensors = [tensor for group in groups for tensor in group["params"]]
    optimiser = torch.optim.Adam(groups)
    base_lr = [group["lr"] for group in optimiser.param_groups]
    tracker = _Tracker(params, offset, config.convergence_window, config.convergence_tol)
    ran = 0
    for step in range(steps):
        if config.final_lr_fraction != 1.0 or config.warmup_steps > 0:
            fraction = learning_rate_fraction(step, steps, config.final_lr_fraction, config.warmup_steps)
            for group, lr in zip(optimiser.param_groups, base_lr):
                group["lr"] = lr * fraction
        optimiser.zero_grad(set_to_none=True)
        loss = objective(params, offset)  # (B,)
        tracker.update(step, loss, params, offset)
        ran = step + 1
        if not tracker.any_active(step):
            break
        total = torch.where(tracker.active, loss, torch.zeros_like(loss)).sum()
        total.backward()
        for tensor in tensors:
            if tensor.grad is not None:
                tensor.grad.nan_to_num_(0.0, 0.0, 0.0)
                if id(tensor) in grad_masks:
                    tensor.grad.mul_(grad_masks[id(tensor)])
        before = {id(t): t.detach().clone() for t in tensors if id(t) in step_scales}
        optimiser.step()
        with torch.no_grad():
            for tensor in tensors:
                if id(tensor) in before:
                    start = before[id(tensor)]
                    tensor.copy_(start + (tensor - start) * step_scales[id(tensor)])
                if id(tensor) in bounds:
                    tensor.clamp_(*bounds[id(tensor)])
        tracker.restore_inactive(params, offset)
        if progress is not None:
            progress(FitStep(name, step + 1, steps, params, offset))
    tracker.restore_best(params, offset)
    return tracker, ran


def fit_batch(
    scene: HeadScene,
    images: torch.Tensor,
    landmarks_px: torch.Tensor,
    skin: torch.Tensor,
    config: FitConfig,
    init: FitParameters | None = None,
    progress: Callable[[FitStep], None] | None = None,
    dense_px: torch.Tensor | None = None,
) -> FitOutcome:
    """Fit the head to B image crops.

    Args:
        scene: the head model, albedo model and renderer settings.
        images: ``(B, 3, R, R)`` crops in [0, 1].
        landmarks_px: ``(B, 68, 2)`` detected landmarks in crop pixels (iBUG order).
        skin: ``(B, 1, R, R)`` per-pixel weight of the photometric term (skin probability
            times the crop's valid area).
        config: schedule and weights.
        init: starting parameters (e.g. from a regressor or ``--init``); when None, zero
            identity, expression and albedo, with the head's rotation and the camera estimated
            from the landmarks in closed form (``config.rotation_from_landmarks``).
        progress: called with a :class:`FitStep` after each step (progress bars, snapshots
            for ``progress.gif``); it must not change the parameters.
        dense_px: ``(B, 478, 2)`` MediaPipe's points in crop pixels (NaN rows for images
            without them), used when the scene has a dense embedding; or None.

    Deterministic: nothing in the fit is random, and it touches no global random state.

    Returns:
        :class:`FitOutcome`.
    """
    batch, device = images.shape[0], images.device
    resolution = config.resolution
    if init is None:
        params = scene.initial_parameters(batch, device)
        if config.rotation_from_landmarks:
            params = pose_from_landmarks(scene, params, landmarks_px, resolution)
        else:
            params.camera.copy_(camera_from_landmarks(scene, params, landmarks_px, resolution))
    else:
        params = init.detach()
    for value in params.tensors().values():
        value.requires_grad_(True)
    target = normalised(landmarks_px, resolution)
    status = ["done"] * batch
    outcome = FitOutcome(params=params, texture_offset=None, status=status)
    dense = _dense_targets(scene, dense_px, config, resolution)
    shape_mean = None if config.shape_prior_mean is None else torch.tensor(config.shape_prior_mean, device=device)
    eye_pose_prior = config.eye_pose_prior
    if dense is not None and bool((dense[1] * (scene.dense_regions == _IRISES)).sum() > 0):
        eye_pose_prior = config.eye_pose_prior_with_irises

    anchor = None
    if init is not None and config.start_rotation_prior > 0:
        anchor = batch_rodrigues(init.pose[:, GLOBAL].detach().float())

    def start_prior(p: FitParameters) -> torch.Tensor:
        if anchor is None:
            return p.pose.new_zeros(p.pose.shape[0])
        return config.start_rotation_prior * rotation_distance2(batch_rodrigues(p.pose[:, GLOBAL]), anchor)

    def rigid_objective(p: FitParameters, _offset) -> torch.Tensor:
        if dense is None:
            predicted = normalised(scene.landmarks_px(p, resolution), resolution)
            return config.landmark_weight * landmark_loss(predicted[:, INNER], target[:, INNER]) + start_prior(p)
        out = scene.flame(shape=p.shape, expression=p.expression, pose=p.pose)
        camera = scene.camera(p, resolution)
        predicted = normalised(camera.project(out.landmarks)[..., :2], resolution)
        loss = config.landmark_weight * landmark_loss(predicted[:, INNER], target[:, INNER])
        points = normalised(camera.project(scene.dense_points(out.vertices))[..., :2], resolution)
        rigid_weights = dense[1] * (scene.dense_regions != _IRISES)  # the eyes cannot turn yet
        return loss + config.dense_weight * robust_landmark_loss(points, dense[0], rigid_weights,
                                                                 config.dense_scale) + start_prior(p)

    # Stage 1 moves only the global rotation (first 3 pose values) and the camera; Adam leaves
    # entries whose gradient is always zero exactly where they are.
    global_only = torch.zeros(1, N_POSE, device=device)
    global_only[:, GLOBAL] = 1.0
    tracker, ran = _run_stage(
        "rigid", config.rigid_steps, params, None,
        [{"params": [params.pose, params.camera], "lr": config.rigid_lr}],
        rigid_objective, config, progress, grad_masks={id(params.pose): global_only},
        step_scales=_camera_steps(scene, params, config),
    )
    outcome.losses["rigid"] = tracker.best_loss
    outcome.steps["rigid"] = ran
    _mark_diverged(status, tracker, "rigid")

    offset = None
    if config.texture_offset:
        t = scene.albedo.mean.shape[-1]
        offset = torch.zeros(batch, 3, t, t, device=device, requires_grad=True)

    def full_objective(p: FitParameters, off: torch.Tensor | None) -> torch.Tensor:
        rendered = scene.render(p, resolution, texture_offset=off)
        predicted = normalised(rendered.landmarks_px, resolution)
        mask = rendered.face_mask * skin
        loss = config.landmark_weight * landmark_loss(predicted, target)
        if dense is not None:
            loss = loss + config.dense_weight * robust_landmark_loss(
                normalised(rendered.dense_px, resolution), dense[0], dense[1], config.dense_scale)
        loss = loss + config.photometric_weight * robust_photometric_loss(
            rendered.image, images, mask, config.photometric_scale)
        loss = loss + config.shape_prior * gaussian_prior(p.shape if shape_mean is None else p.shape - shape_mean)
        loss = loss + config.expression_prior * gaussian_prior(p.expression)
        loss = loss + config.texture_prior * gaussian_prior(p.texture)
        loss = loss + config.pose_prior * gaussian_prior(p.pose[:, NECK_AND_JAW])
        loss = loss + eye_pose_prior * gaussian_prior(p.pose[:, EYES])
        loss = loss + start_prior(p)
        if off is not None:
            loss = loss + config.offset_smoothness * smoothness_loss(off)
            loss = loss + config.offset_magnitude * off.pow(2).flatten(1).mean(dim=1)
        return loss

    factors = {"shape": config.shape_lr_factor, "expression": config.expression_lr_factor}
    groups = [{"params": [value], "lr": config.full_lr * factors.get(name, 1.0)}
              for name, value in params.tensors().items()]
    if offset is not None:
        groups.append({"params": [offset], "lr": config.offset_lr})
    if config.full_steps > 0:
        bounds = {}
        if scene.flame.expression_bounds is not None:  # blendshape weights (ARKit's 0..1)
            bounds[id(params.expression)] = scene.flame.expression_bounds
            with torch.no_grad():
                params.expression.clamp_(*scene.flame.expression_bounds)
        tracker, ran = _run_stage("full", config.full_steps, params, offset, groups,
                                  full_objective, config, progress, bounds=bounds,
                                  step_scales=_camera_steps(scene, params, config))
        outcome.losses["full"] = tracker.best_loss
        outcome.steps["full"] = ran
        _mark_diverged(status, tracker, "full")

    final = params.detach()
    outcome.params = final
    outcome.texture_offset = None if offset is None else offset.detach()
    with torch.no_grad():
        rendered = scene.render(final, resolution, texture_offset=outcome.texture_offset)
        outcome.landmarks = rendered.landmarks_px
        outcome.dense = rendered.dense_px if dense is not None else None
        outcome.landmark_error = (rendered.landmarks_px - landmarks_px).norm(dim=-1).mean(dim=1)
        outcome.photometric_error = photometric_error(rendered.image, images,
                                                      rendered.face_mask * skin)
    return outcome


_IRISES = REGIONS.index("irises")


def rotation_distance2(rotation: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotations -> ``(B,)`` ``||R - A||_F^2 / 4 = 2 sin^2(angle / 2)``, about half
    the squared angle (radians) between them for small angles, smooth everywhere."""
    return (rotation - anchor).pow(2).sum(dim=(1, 2)) / 4


def _dense_targets(scene: HeadScene, dense_px: torch.Tensor | None, config: FitConfig,
                   resolution: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The embedded points' targets ``(B, K, 2)`` (normalised crop coordinates) and weights
    ``(B, K)`` (region x precision, 0 where missing), or None when there are none."""
    if (dense_px is None or scene.dense_embedding is None or len(scene.dense_embedding.point_ids) == 0
            or not torch.isfinite(dense_px).any()):
        return None
    targets = dense_px[:, scene.dense_ids]  # (B, K, 2)
    present = torch.isfinite(targets).all(dim=-1)
    by_region = dict(config.dense_region_weights)
    region_weight = torch.tensor([by_region.get(name, 1.0) for name in REGIONS],
                                 device=targets.device)[scene.dense_regions]
    precision = (1.0 / (0.5 + scene.dense_spread)) ** 2
    weights = present * (region_weight * precision / precision.mean())[None]
    return normalised(torch.nan_to_num(targets), resolution), weights


def _camera_steps(scene: HeadScene, params: FitParameters, config: FitConfig) -> dict[int, torch.Tensor] | None:
    """The camera's per-parameter step units for a stage (:meth:`HeadScene.camera_step_scale`
    at the stage's start), as ``_run_stage``'s ``step_scales``; None with raw steps."""
    if not config.even_camera_steps:
        return None
    return {id(params.camera): scene.camera_step_scale(params, config.resolution)}


def _mark_diverged(status: list[str], tracker: _Tracker, stage: str) -> None:
    for index, step in enumerate(tracker.diverged_at.tolist()):
        if step >= 0 and status[index] == "done":
            status[index] = f"diverged: non-finite loss in {stage} stage at step {step}; " \
                            "best parameters before it were kept"
