"""Training the image regressor (``flamefit train-regressor``): synthetic renders and/or fits.

Sources, mixable per batch:

* **synthetic** (:mod:`flamefit.regressor.synthetic_faces`): renders of the model in use made on
  the training device, exact labels;
* **fits** (:mod:`flamefit.regressor.fit_labels`): ``flamefit fit`` results as pseudo-labels
  (the optimiser distilled into the network).

The loss (:func:`regression_loss`) compares the decoded prediction with the labels: rotation
matrices, jaw, expression, identity, albedo, light and camera coefficients, the 68 landmarks
projected into the crop, and the face-region vertices of the neutral-pose head (in cm).

A run writes to its folder: ``checkpoint.pt`` (weights, optimiser, step, curves: a rerun of the
same command resumes from it, exactly, since every batch is drawn from its own seed),
``regressor.pt`` (what ``flamefit regress`` loads, refreshed at each checkpoint),
``training.json`` (settings, curves, validation figures) and ``training.png`` (the curves).
Ctrl-C stops at the end of the step under way (the checkpoint never holds half a step).
Validation uses a fixed synthetic set and, with fits, the held-out tenth of the photos.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from flamefit.fitting.parameters import FitParameters
from flamefit.regressor.options import TrainingSettings
from flamefit.fitting.image_regressor import (FORMAT_VERSION, REGRESSOR_FILE, ImageRegressor, RegressorSpec,
                                              log_scale_error, parameters_from_outputs)

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
TRAINING_JSON = "training.json"
TRAINING_PNG = "training.png"


@dataclass
class TrainingLog:
    """Curves of a run: training loss (and its terms) every 10 steps, validation figures."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0


# -- loss ------------------------------------------------------------------------------------
def regression_loss(scene, prediction: dict[str, torch.Tensor], truth: FitParameters,
                    resolution: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its terms (each a mean over the batch).

    Args:
        scene: the :class:`flamefit.fitting.scene.HeadScene` (orthographic).
        prediction: :meth:`ImageRegressor.decode`'s output.
        truth: the labels (crop camera).
        resolution: crop side (pixels), for the landmark term.
    """
    from flamefit.flame.lbs import batch_rodrigues
    from flamefit.flame.pose_layout import GLOBAL, JAW

    predicted = parameters_from_outputs(prediction)
    rotation = batch_rodrigues(truth.pose[:, GLOBAL])
    terms = {
        "rotation": (prediction["rotation"] - rotation).abs().mean(),
        "jaw": (prediction["jaw"] - truth.pose[:, JAW]).abs().mean() * 3,
        "expression": (predicted.expression - truth.expression).abs().mean(),
        "shape": (predicted.shape - truth.shape).abs().mean() * 0.3,
        "texture": (predicted.texture - truth.texture).abs().mean() * 0.3,
        "light": (predicted.light - truth.light).abs().mean(),
        "camera": log_scale_error(predicted.camera, truth.camera).mean()
        + ((predicted.camera[:, 1:] - truth.camera[:, 1:]) * truth.camera[:, :1]).abs().mean(),
    }
    # the 68 landmarks in the crop, [-1, 1] units
    landmarks = scene.landmarks_px(predicted, resolution)
    with torch.no_grad():
        target = scene.landmarks_px(truth, resolution)
    terms["landmarks"] = (landmarks - target).norm(dim=-1).mean() / (resolution / 2) * 5
    # the face's shape: neutral pose but the jaw, metres -> cm
    jaw_only = torch.zeros_like(truth.pose)
    jaw_only[:, JAW] = predicted.pose[:, JAW]
    vertices = scene.flame(shape=predicted.shape, expression=predicted.expression, pose=jaw_only).vertices
    with torch.no_grad():
        jaw_only_truth = torch.zeros_like(truth.pose)
        jaw_only_truth[:, JAW] = truth.pose[:, JAW]
        true_vertices = scene.flame(shape=truth.shape, expression=truth.expression, pose=jaw_only_truth).vertices
    face = scene.face_region
    terms["vertices"] = (vertices[:, face] - true_vertices[:, face]).norm(dim=-1).mean() * 100
    return sum(terms.values()), terms


def rotation_error_deg(predicted_pose: torch.Tensor, true_pose: torch.Tensor) -> torch.Tensor:
    """``(B,)`` angle (degrees) between two global rotations given as ``(B, 15)`` poses."""
    from flamefit.flame.lbs import batch_rodrigues
    from flamefit.flame.pose_layout import GLOBAL

    relative = batch_rodrigues(predicted_pose[:, GLOBAL]) @ batch_rodrigues(true_pose[:, GLOBAL]).transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def prediction_errors(scene, predicted: FitParameters, truth: FitParameters, resolution: int) -> dict[str, torch.Tensor]:
    """Per item: ``rotation_deg``, ``landmarks_px`` (mean 68-point distance in crop pixels),
    ``landmarks_percent_box`` (the same in % of the true landmarks' box size sqrt(w h), as
    AFLW2000-3D's NME: the inter-ocular distance vanishes in profile) and ``face_vertices_mm``
    (similarity-aligned, as face benchmarks)."""
    from flamefit.fitting.synthetic import face_vertex_error_mm

    with torch.no_grad():
        true_landmarks = scene.landmarks_px(truth, resolution)
        distance = (scene.landmarks_px(predicted, resolution) - true_landmarks).norm(dim=-1).mean(dim=1)
        extent = true_landmarks.amax(dim=1) - true_landmarks.amin(dim=1)
        box = extent.prod(dim=1).clamp_min(1e-6).sqrt()
        vertices = scene.flame(shape=truth.shape, expression=truth.expression, pose=truth.pose).vertices
        return {"rotation_deg": rotation_error_deg(predicted.pose, truth.pose),
                "landmarks_px": distance, "landmarks_percent_box": 100 * distance / box,
                "face_vertices_mm": face_vertex_error_mm(scene, predicted, vertices, align=True)}


# -- the run ---------------------------------------------------------------------------------
def _step_generator(seed: int, step: int, stream: str = "train") -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{stream}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _autocast(device: torch.device, precision: str):
    import contextlib

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _split_fits(labels, seed: int):
    """Hold out a tenth of the photos (by a hash of their id; none when fewer than 5)."""
    if labels is None:
        return None, None
    held = torch.tensor([int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(), 16) % 10 == 0
                         for i in labels.ids]) if len(labels) >= 5 else torch.zeros(len(labels), dtype=torch.bool)
    train_rows, val_rows = torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()
    return labels.subset(train_rows), (labels.subset(val_rows) if len(val_rows) else None)


class TrainingStopped(KeyboardInterrupt):
    """Raised by a ``progress`` hook (or Ctrl-C) to stop a run; the checkpoint is written first."""


class _DeferredInterrupt:
    """Ctrl-C during a step only sets :attr:`requested`; the loop stops at the step's end, so a
    checkpoint never holds half a step (batch-norm statistics updated by a forward pass whose
    update was not applied, an optimiser stopped between its tensors). Outside the main thread
    (where Python delivers no signal) it does nothing."""

    def __enter__(self) -> "_DeferredInterrupt":
        import signal
        import threading

        self.requested, self._previous = False, None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            import signal

            signal.signal(signal.SIGINT, self._previous)


def train_regressor(scene, out_dir: str | Path, settings: TrainingSettings, model_sha256: str = "",
                    show_progress: bool = True, progress: Callable[[int, float], None] | None = None
                    ) -> tuple[ImageRegressor, TrainingLog]:
    """Train (or resume training) an :class:`ImageRegressor` for ``scene`` into ``out_dir``.

    Args:
        scene: the :class:`flamefit.fitting.scene.HeadScene` (orthographic camera) on the
            training device.
        out_dir: the run folder (created); a checkpoint there is resumed.
        settings: :class:`TrainingSettings`.
        model_sha256: the head-model file's hash, recorded with the weights.
        progress: called with (step, loss) after every step; it may raise
            :class:`TrainingStopped` (tests, schedulers).

    Raises:
        flamefit.utils.UsageError: the folder holds a run with other settings, or no source.
        TrainingStopped / KeyboardInterrupt: after writing the checkpoint.
    """
    from tqdm import tqdm

    from flamefit.regressor.synthetic_faces import SyntheticFaceSampler, background_bank
    from flamefit.utils import UsageError

    if not settings.synthetic and not settings.from_fits:
        raise UsageError("nothing to train on: use synthetic renders (the default) and/or --from-fits DIR")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(scene.buffers()).device
    spec = RegressorSpec(n_shape=scene.flame.n_shape, n_expression=scene.flame.n_expression,
                         n_texture=scene.albedo.n_components, expression_bounds=scene.flame.expression_bounds,
                         resolution=settings.resolution, width=settings.width, model_sha256=model_sha256,
                         model_description=getattr(scene, "description", ""))
    torch.manual_seed(settings.seed)  # weight initialisation
    network = ImageRegressor(spec).to_device(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    training_log, start = TrainingLog(), 0
    checkpoint = _load_checkpoint(out / CHECKPOINT_FILE, settings, spec, device)
    if checkpoint is not None:
        network.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimizer"])
        training_log = TrainingLog(**checkpoint["log"])
        start = checkpoint["step"]
        log.info("resuming %s at step %d of %d", out, start, settings.steps)

    fits, fits_val = _split_fits(_fit_labels(settings, spec), settings.seed)
    sampler = None
    if settings.synthetic:
        bank = background_bank(device, settings.backgrounds, seed=settings.seed)
        sampler = SyntheticFaceSampler(scene, settings.resolution, bank, settings.occluder_fraction,
                                       settings.max_yaw)
    n_fits = 0 if fits is None else (settings.batch_size if sampler is None
                                     else int(round(settings.batch_size * settings.fits_fraction)))
    n_synthetic = settings.batch_size - n_fits
    validation = None if sampler is None else sampler.sample(settings.validation_size,
                                                             _step_generator(settings.seed, 0, "validation"))

    def batch_at(step: int) -> tuple[torch.Tensor, FitParameters]:
        generator = _step_generator(settings.seed, step)
        images, labels = [], []
        if n_synthetic:
            drawn = sampler.sample(n_synthetic, generator)
            images.append(drawn.images)
            labels.append(drawn.truth)
        if n_fits:
            rows = torch.randint(0, len(fits), (n_fits,), generator=generator)
            images.append(fits.images[rows].to(device).float() / 255)
            labels.append(FitParameters(**{k: v[rows] for k, v in fits.params.tensors().items()}).to(device))
        joined = FitParameters(**{k: torch.cat([getattr(p, k) for p in labels]) for k in labels[0].tensors()})
        return torch.cat(images), joined

    def save(step: int) -> None:
        training_log.seconds = round(training_log.seconds + time.time() - resumed_at, 1)
        _save(out, network, optimiser, spec, settings, step, training_log)

    if start >= settings.steps:  # finished before: nothing to do, nothing rewritten
        log.info("%s: training finished before (%d steps)", out, start)
        return network.eval(), training_log
    started = resumed_at = time.time()
    interrupt = _DeferredInterrupt().__enter__()
    bar = tqdm(total=settings.steps, initial=start, desc="training", unit="step", disable=not show_progress)
    completed = start  # steps whose update is applied
    samples_this_run = 0
    try:
        for step in range(start, settings.steps):
            fraction = step / max(1, settings.steps)
            warm = min(1.0, (step + 1) / max(1, settings.steps // 50))
            for group in optimiser.param_groups:
                group["lr"] = settings.learning_rate * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * fraction)))
            network.train()
            images, truth = batch_at(step)
            with _autocast(device, settings.precision):
                raw = network(images)
            loss, terms = regression_loss(scene, network.decode(raw), truth, settings.resolution)
            if not torch.isfinite(loss):
                raise RuntimeError(f"the loss became {float(loss)} at step {step}; lower --learning-rate")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimiser.step()
            samples_this_run += len(images)
            completed = done = step + 1
            if done % 10 == 0 or done == settings.steps:
                training_log.steps.append(done)
                training_log.loss.append(round(float(loss.detach()), 5))
                for name, value in terms.items():
                    training_log.terms.setdefault(name, []).append(round(float(value.detach()), 5))
                bar.set_postfix_str(f"loss {float(loss.detach()):.3f}")
            if validation is not None or fits_val is not None:
                if done % settings.validation_every == 0 or done == settings.steps:
                    figures = validate(network, scene, validation, fits_val, settings.resolution, device)
                    training_log.validation.append({"step": done, **figures})
                    bar.set_postfix_str(f"loss {float(loss.detach()):.3f} val rot {figures.get('rotation_deg_median', float('nan')):.1f}°")
            bar.update(1)
            if progress is not None:
                progress(done, float(loss.detach()))
            if interrupt.requested:
                raise KeyboardInterrupt
            if done % settings.checkpoint_every == 0 and done != settings.steps:
                save(done)
                resumed_at = time.time()
            if settings.minutes is not None and time.time() - started > settings.minutes * 60:
                log.warning("stopping at step %d of %d after --minutes %g; run the same command to "
                            "resume", done, settings.steps, settings.minutes)
                break
    except KeyboardInterrupt:
        bar.close()
        training_log.samples_per_second = round(samples_this_run / max(time.time() - started, 1e-9), 1)
        save(completed)
        raise
    finally:
        interrupt.__exit__()
    bar.close()
    training_log.samples_per_second = round(samples_this_run / max(time.time() - started, 1e-9), 1)
    save(completed)
    network.eval()
    return network, training_log


def validate(network: ImageRegressor, scene, synthetic, fits, resolution: int, device) -> dict:
    """The mean loss and the median errors (:func:`prediction_errors`) on the synthetic
    validation set (all, and |yaw| >= 45) and on the held-out fits (``fits_`` figures)."""
    network.eval()
    figures: dict[str, float] = {}
    with torch.no_grad():
        if synthetic is not None:
            errors, loss = _errors_in_chunks(network, scene, synthetic.images, synthetic.truth, resolution)
            figures["loss"] = round(loss, 4)
            steep = synthetic.yaw_deg.abs().cpu() >= 45
            for name, values in errors.items():
                figures[f"{name}_median"] = round(float(values.median()), 3)
                if bool(steep.any()):
                    figures[f"{name}_median_yaw_45_90"] = round(float(values[steep].median()), 3)
        if fits is not None:
            images = fits.images.to(device).float() / 255
            errors, loss = _errors_in_chunks(network, scene, images, fits.params.to(device), resolution)
            figures["fits_loss"] = round(loss, 4)
            for name, values in errors.items():
                figures[f"fits_{name}_median"] = round(float(values.median()), 3)
    network.train()
    return figures


def _errors_in_chunks(network, scene, images, truth: FitParameters, resolution: int,
                      chunk: int = 128) -> tuple[dict[str, torch.Tensor], float]:
    """Per-item errors (on the CPU) and the mean loss over ``images`` in chunks."""
    out: dict[str, list[torch.Tensor]] = {}
    loss_sum = 0.0
    for begin in range(0, images.shape[0], chunk):
        rows = slice(begin, begin + chunk)
        decoded = network.decode(network(images[rows]))
        part = FitParameters(**{k: v[rows] for k, v in truth.tensors().items()})
        for name, values in prediction_errors(scene, parameters_from_outputs(decoded), part, resolution).items():
            out.setdefault(name, []).append(values.float().cpu())
        loss, _ = regression_loss(scene, decoded, part, resolution)
        loss_sum += float(loss) * part.pose.shape[0]
    return {name: torch.cat(values) for name, values in out.items()}, loss_sum / images.shape[0]


def _fit_labels(settings: TrainingSettings, spec: RegressorSpec):
    if not settings.from_fits:
        return None
    from flamefit.regressor.fit_labels import load_fit_labels
    from flamefit.utils import UsageError

    try:
        return load_fit_labels(settings.from_fits, spec, log=log.warning)
    except ValueError as error:
        raise UsageError(str(error)) from None


# -- files -----------------------------------------------------------------------------------
def _load_checkpoint(path: Path, settings: TrainingSettings, spec: RegressorSpec, device) -> dict | None:
    from flamefit.utils import UsageError

    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise UsageError(f"{path}: unreadable checkpoint ({error}); delete it to start over") from None
    if payload.get("version") != FORMAT_VERSION:
        raise UsageError(f"{path}: a checkpoint of another format version; delete it to start over")
    saved = payload["settings"]
    mine = settings.identity()
    for name, value in mine.items():
        if saved.get(name) != value:
            raise UsageError(f"{path.parent} holds a run with {name}={saved.get(name)!r}, not {value!r}: "
                             f"use the same settings to resume, or another --out (or delete "
                             f"{CHECKPOINT_FILE}) to start over")
    if payload["spec"] != spec.to_dict():
        raise UsageError(f"{path.parent} holds a run for another head model or network size; use another --out")
    return payload


def _save(out: Path, network: ImageRegressor, optimiser, spec: RegressorSpec, settings: TrainingSettings,
          step: int, training_log: TrainingLog) -> None:
    from flamefit.regressor.curves import plot_training
    from flamefit.utils import atomic_write, write_json

    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    checkpoint = {"version": FORMAT_VERSION, "settings": settings.identity(), "spec": spec.to_dict(),
                  "step": step, "model": state, "optimizer": optimiser.state_dict(), "log": asdict(training_log)}
    atomic_write(out / CHECKPOINT_FILE, lambda stream: torch.save(checkpoint, stream))
    save_regressor(out / REGRESSOR_FILE, network, step, settings)
    summary = {"format_version": FORMAT_VERSION, "step": step, "steps": settings.steps,
               "finished": step >= settings.steps, "settings": asdict(settings), "spec": spec.to_dict(),
               "weights": sum(v.numel() for v in state.values() if v.is_floating_point()),
               **asdict(training_log)}
    write_json(out / TRAINING_JSON, summary)
    plot_training(out / TRAINING_PNG, training_log, title=f"image regressor, step {step}/{settings.steps}")


def save_regressor(path: Path, network: ImageRegressor, step: int, settings: TrainingSettings) -> Path:
    """The inference file: format version, spec, float32 weights, the step and settings."""
    from flamefit.utils import atomic_write

    payload = {"version": FORMAT_VERSION, "spec": network.spec.to_dict(), "step": step,
               "settings": asdict(settings),
               "state": {k: v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu()
                         for k, v in network.state_dict().items()}}
    return atomic_write(path, lambda stream: torch.save(payload, stream))


__all__ = ["TrainingSettings", "TrainingLog", "TrainingStopped", "train_regressor", "regression_loss",
           "prediction_errors", "rotation_error_deg", "validate", "save_regressor"]
