"""``flamefit fit``: fit every photo of files, folders and globs, in batches, resumably.

Four steps, each its own function:

1. **plan** (:mod:`flamefit.fitting.plan`): photos and their ids, per-photo inputs, what a
   rerun skips (done with the same photo content) or refuses;
2. **prepare** (:func:`prepare_photo`): load, detect or read landmarks, crop, skin weight,
   initial parameters; a failure fails that photo alone;
3. **fit** (:func:`fit_prepared`, shared with ``build-texture-space``): one batched
   optimisation;
4. **write** (:func:`flamefit.fitting.outputs.write_fit_outputs`): the result folder.

A batch job never dies on one bad photo: its failure goes to its ``report.json``, to
``OUT/summary.csv`` and to the returned summary, and the job goes on. A rerun skips photos whose
report says done for the same file content, so a crashed job resumes where it stopped. Ctrl-C
stops after writing what is finished (:class:`FitInterrupted`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from flamefit.fitting.errors import InputError
from flamefit.fitting.options import (
    AUTO_INIT, FILE_INIT, REGRESSOR_INIT, RESULT_INIT, ZERO_INIT, FitOptions, check_schedule, init_keyword,
    resolve_schedule,
)
from flamefit.fitting.plan import IMAGE_SUFFIXES, PlannedPhoto, collect_photos, plan_fit
from flamefit.fitting.prepare import PreparedImage, prepare_image
from flamefit.fitting.results import (
    SUMMARY_FILE, base_report, is_result, write_failure_report, write_summary_csv,
)
from flamefit.renderer.devices import resolve_device
from flamefit.utils import UsageError, folder_lock

log = logging.getLogger(__name__)

__all__ = ["FitOptions", "FitSummary", "FitInterrupted", "FitSession", "fit_images", "fit_prepared",
           "prepare_photo", "run_batch", "start_session", "IMAGE_SUFFIXES"]


@dataclass
class FitSummary:
    """What happened to each photo of a run, by id: fitted, skipped (done before with the same
    photo), failed (id -> reason); ``rows`` are the lines of ``summary.csv``."""

    fitted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    rows: list[dict] = field(default_factory=list)

    def line(self) -> str:
        text = (f"{len(self.fitted)} fitted, {len(self.skipped)} skipped (already done), "
                f"{len(self.failed)} failed; results in {self.out_dir}")
        if self.failed and self.out_dir is not None:
            text += f" (reasons in {self.out_dir / SUMMARY_FILE})"
        return text

    def record(self, photo_id: str, path: Path, status: str, reason: str = "",
               seconds: float | None = None, error_iod: float | None = None) -> None:
        if status == "fitted":
            self.fitted.append(photo_id)
        elif status == "skipped":
            self.skipped.append(photo_id)
        else:
            self.failed[photo_id] = reason
        self.rows.append({"id": photo_id, "input": str(Path(path).absolute()), "status": status,
                          "reason": reason, "seconds": None if seconds is None else round(seconds, 2),
                          "landmark_error_percent_iod": None if error_iod is None else round(error_iod, 3)})


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit_images`; ``summary`` says what finished before it."""

    def __init__(self, summary: FitSummary):
        super().__init__("interrupted")
        self.summary = summary


def prepare_photo(photo: PlannedPhoto, scene, options: FitOptions) -> PreparedImage:
    """Step 2 for one photo: :func:`flamefit.fitting.prepare.prepare_image` (on a steep profile
    the image regressor's landmarks and start, :mod:`flamefit.fitting.profile_landmarks`) plus
    its ``--init`` values (``item.init``): another tool's output read unchanged and placed in
    this photo's crop (:mod:`flamefit.fitting.regressor_outputs`), with notes saying what was
    found and used.

    Raises:
        InputError: anything wrong with the photo or one of its per-photo files, in one line.
    """
    from flamefit.fitting.profile_landmarks import image_regressor_for, steep_view_refiner
    from flamefit.fitting.regressor_outputs import initial_values, read_regressor_output

    item = prepare_image(photo.path, photo.id, resolution=options.resolution,
                         landmarks_path=photo.landmarks, mask_path=photo.mask,
                         detector=options.detector, face_index=options.face_index,
                         steep_view=steep_view_refiner(scene, image_regressor_for(scene, options.image_regressor)))
    if item.init is not None:  # a steep view: the image regressor's prediction
        if init_keyword(options.init) == ZERO_INIT:
            item.init = None
            item.notes.append("--init zero: the fit starts from zero, not from the image regressor")
        elif photo.init is None:
            item.notes.append("started from the image regressor's prediction (steep view)")
    if photo.init is not None:
        try:
            output = read_regressor_output(photo.init, frame=photo.id)
            values, notes = initial_values(output, item, scene, options.resolution)
        except ValueError as error:
            raise InputError(None, f"--init: {error}") from None
        camera = values.get("camera")
        n_camera = scene.initial_parameters(1, "cpu").camera.shape[1]
        if camera is not None and camera.shape[0] != n_camera:
            raise InputError(photo.init, f"--init: its camera has {camera.shape[0]} values but the "
                                         f"{scene.camera_type} camera needs {n_camera}")
        item.init = values
        item.notes.extend(notes)
    if photo.note:
        item.notes.append(photo.note)
    return item


def regressor_start(scene, items: list[PreparedImage], resolution: int) -> None:
    """``--init regressor`` (or ``auto``): give every item without ``--init`` values the landmark regressor's
    prediction from its detected 68 points (:mod:`flamefit.fitting.landmark_regressor`; the
    shipped one for the open model, else cached or trained on first use)."""
    from flamefit.fitting.landmark_regressor import initial_values, regressor_for

    todo = [item for item in items if not item.init]
    if not todo:
        return
    if getattr(scene, "landmark_regressor", None) is None:
        scene.landmark_regressor = regressor_for(scene, log=log.warning)
    predicted = initial_values(scene.landmark_regressor, np.stack([it.landmarks_crop for it in todo]),
                               resolution)
    sizes = {"shape": scene.flame.n_shape, "expression": scene.flame.n_expression}
    for item, values in zip(todo, predicted):
        start = {}
        for key, value in values.items():
            if key in sizes:
                value = np.pad(value, (0, max(0, sizes[key] - len(value))))[:sizes[key]]
            start[key] = value.astype(np.float32)
        if scene.camera_type != "orthographic":
            del start["camera"]  # estimated from the landmarks at the predicted pose instead
        item.init = start
        item.notes.append("started from the landmark regressor's prediction (--init regressor)")


def _initial_parameters(scene, items: list[PreparedImage], resolution: int, device,
                        shape_start=None):
    """Parameters from the items' ``--init`` values (and ``shape_start``, the ``--shape-prior``
    shape, where an item's has no shape), or None when there are none (zero start and a camera
    from the landmarks, inside :func:`flamefit.fitting.optimizer.fit_batch`). An item without
    an initial camera gets one from its landmarks at its initial pose and shape."""
    if not any(item.init for item in items) and shape_start is None:
        return None
    from flamefit.fitting.landmark_pose import camera_from_landmarks

    params = scene.initial_parameters(len(items), device)
    for row, item in enumerate(items):
        values = dict(item.init or {})
        if shape_start is not None and "shape" not in values:
            values["shape"] = np.asarray(shape_start, dtype=np.float32)
        for key, value in values.items():
            target = getattr(params, key)
            target[row] = torch.as_tensor(value, dtype=target.dtype, device=device)
    landmarks = torch.tensor(np.stack([it.landmarks_screen for it in items]), dtype=torch.float32,
                             device=device)
    estimated = camera_from_landmarks(scene, params, landmarks, resolution)
    for row, item in enumerate(items):
        if "camera" not in (item.init or {}):
            params.camera[row] = estimated[row]
    return params


def fit_prepared(scene, items: list[PreparedImage], config, init=None, progress=None):
    """Step 3: fit prepared photos as one batch (:func:`flamefit.fitting.optimizer.fit_batch`
    on their stacked crops, screen-space landmarks and skin weights). Shared by ``flamefit
    fit`` and ``build-texture-space``.

    Args:
        scene: the :class:`flamefit.fitting.scene.HeadScene` (on the fit's device).
        items: prepared photos, all at ``config.resolution``.
        config: :class:`flamefit.fitting.optimizer.FitConfig`.
        init: starting :class:`flamefit.fitting.parameters.FitParameters`, or None.
        progress: the :func:`fit_batch` hook.
    """
    from flamefit.fitting.optimizer import fit_batch

    device = next(scene.buffers()).device
    images = torch.tensor(np.stack([it.crop for it in items]), device=device).permute(0, 3, 1, 2).float()
    landmarks = torch.tensor(np.stack([it.landmarks_screen for it in items]), dtype=torch.float32,
                             device=device)
    skin = torch.tensor(np.stack([it.skin for it in items]), device=device)[:, None].float()
    dense = None
    if any(it.dense_crop is not None for it in items):
        ensure_dense_embedding(scene)
        from flamefit.fitting.mediapipe_detect import N_DENSE

        missing = np.full((N_DENSE, 2), np.nan)
        dense = torch.tensor(np.stack([missing if it.dense_screen is None else it.dense_screen
                                       for it in items]), dtype=torch.float32, device=device)
    return fit_batch(scene, images, landmarks, skin, config, init=init, progress=progress,
                     dense_px=dense)


def ensure_dense_embedding(scene) -> None:
    """Give ``scene`` the dense (MediaPipe) embedding of its model file if it has none: the
    shipped one for the open model, else the cached or a newly calibrated one (about a minute,
    once per model file; see :mod:`flamefit.fitting.dense_embedding`)."""
    if scene.dense_embedding is not None or scene.model_file is None:
        return
    from flamefit.fitting.dense_embedding import dense_embedding_for

    scene.set_dense_embedding(dense_embedding_for(scene, scene.model_file, log=log.warning))


class _Snapshots:
    """A ``progress`` hook collecting uint8 renders of the full stage for ``progress.gif``."""

    def __init__(self, scene, items: list[PreparedImage], resolution: int, every: int,
                 then: Callable | None):
        self.scene, self.resolution, self.every, self.then = scene, resolution, every, then
        device = next(scene.buffers()).device
        self.images = torch.tensor(np.stack([it.crop for it in items]), device=device).permute(0, 3, 1, 2).float()
        self.frames: list[np.ndarray] = []  # (B, R, R, 3) uint8 each

    def __call__(self, state) -> None:
        if self.then is not None:
            self.then(state)
        if state.stage != "full" or (state.step - 1) % self.every:
            return
        with torch.no_grad():
            rendered = self.scene.render(state.params, self.resolution, texture_offset=state.texture_offset)
            frame = rendered.image * rendered.alpha + self.images * (1 - rendered.alpha)
        self.frames.append((frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def _load_scene(options: FitOptions, device):
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.renderer.rasterize import resolve_backend

    files = select_model(options.flame_dir, open_model=options.open_model)
    # "auto" is settled once here, so that every report names the rasteriser that ran.
    backend = options.backend if options.backend != "auto" else resolve_backend("auto", device)
    scene = HeadScene.from_model_files(
        files, n_shape=options.n_shape, n_expression=options.n_expression,
        n_texture=options.n_texture, camera=options.camera, texture_space=options.texture_space,
        backend=backend,
    ).to(device)
    scene.model_kind = files.kind  # which coefficients other tools' outputs may set (--init)
    return files, backend, scene


def _shape_prior(options: FitOptions, scene) -> tuple[tuple[float, ...] | None, dict]:
    """``--shape-prior``'s shape (sized to the model's) and its report entry, or ``(None, {})``.

    Raises:
        UsageError: the file is unreadable, holds no shape, or FLAME's for another model.
    """
    if options.shape_prior is None:
        return None, {}
    from flamefit.fitting.regressor_outputs import load_shape_prior

    try:
        shape, found = load_shape_prior(options.shape_prior, scene)
    except ValueError as error:
        raise UsageError(f"--shape-prior: {error}") from None
    return tuple(float(v) for v in shape), {"shape_prior": f"{Path(options.shape_prior).absolute()} ({found})"}


def check_options(options: FitOptions) -> None:
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {options.batch_size}")
    check_schedule(options.resolution, options.rigid_steps, options.full_steps)
    if options.face_index < 0:
        raise UsageError(f"--face must be 0 (the largest face) or more, got {options.face_index}")
    from flamefit.fitting.choices import OUTPUT_SETS

    if options.outputs not in OUTPUT_SETS:
        raise UsageError(f"--outputs must be one of {', '.join(OUTPUT_SETS)}, got {options.outputs!r}")


def check_output_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a folder; choose a folder path")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".flamefit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--out {out_dir}: cannot write to the output folder ({error.strerror or error}); "
                         "choose another --out") from None


def fit_images(inputs: list[str | Path], out_dir: str | Path, options: FitOptions | None = None,
               show_progress: bool = True) -> FitSummary:
    """Fit every photo in ``inputs`` and write ``OUT/<id>/`` for each (see
    :mod:`flamefit.fitting.results`) and ``OUT/summary.csv``.

    Returns:
        :class:`FitSummary`.

    Raises:
        UsageError: a bad option, input or environment (nothing was fitted).
        flamefit.flame.errors.ModelFileError: no usable head model.
        FitInterrupted: Ctrl-C; what finished is written and in its ``summary``.
    """
    from tqdm import tqdm

    options = options or FitOptions()
    check_options(options)
    out_dir = Path(out_dir)
    photos = collect_photos(inputs)
    device = resolve_device(options.device)
    check_output_folder(out_dir)
    summary = FitSummary(out_dir=out_dir)
    with folder_lock(out_dir):
        per_photo_init = None if init_keyword(options.init) else options.init
        plan = plan_fit(photos, out_dir, landmarks=options.landmarks, mask=options.mask,
                        init=per_photo_init, overwrite=options.overwrite, on_changed=options.on_changed)
        paths = {photo.id: photo.path for photo in photos}
        for photo_id in plan.skipped:
            summary.record(photo_id, paths[photo_id], "skipped", "done before with this photo")
        for photo_id, (path, reason) in plan.refused.items():
            summary.record(photo_id, path, "failed", reason)
        if not plan.todo:  # a rerun with everything done: no model to load
            write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
            return summary
        session = start_session(options, device)
        bar = tqdm(total=len(plan.todo), desc="photos", unit="photo", disable=not show_progress)
        try:
            for start in range(0, len(plan.todo), options.batch_size):
                run_batch(plan.todo[start:start + options.batch_size], session, out_dir, summary, bar)
        except KeyboardInterrupt:
            bar.close()
            write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
            raise FitInterrupted(summary) from None
        bar.close()
        write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
    return summary


@dataclass
class FitSession:
    """What every batch of a run shares: the options, the scene on its device, the optimiser's
    :class:`~flamefit.fitting.optimizer.FitConfig` and the report fields every photo gets
    (``context``: model, device, backend, camera, resolution, detector, shape prior, where
    the fits start and the schedule) and where the fits start (``start``: ``"regressor"``,
    ``"zero"`` or ``"file"``, see :func:`fit_start`)."""

    options: FitOptions
    scene: object
    config: object
    context: dict
    start: str = ZERO_INIT


def start_session(options: FitOptions, device) -> FitSession:
    """Load the model and settle the run's settings: what :func:`fit_images` does once per run
    and a scale-out worker (:mod:`flamefit.scale`) once per process.

    Raises:
        UsageError: a bad ``--shape-prior`` or ``--image-regressor``.
        flamefit.flame.errors.ModelFileError: no usable head model.
    """
    from flamefit.fitting.detect import resolve_detector
    from flamefit.fitting.optimizer import FitConfig

    files, backend, scene = _load_scene(options, device)
    shape_mean, prior = _shape_prior(options, scene)
    if options.image_regressor is not None:
        from flamefit.fitting.profile_landmarks import image_regressor_for

        try:  # checked once, before any photo
            image_regressor_for(scene, options.image_regressor)
        except ValueError as error:
            raise UsageError(f"--image-regressor: {error}") from None
    start, described = fit_start(scene, options.init)
    schedule = resolve_schedule(options.rigid_steps, options.full_steps, start)
    rigid_steps, full_steps = schedule.steps
    config = FitConfig(resolution=options.resolution, **schedule.config_fields(),
                       texture_offset=options.texture_offset, shape_prior_mean=shape_mean)
    context = {"model": files.describe(), "device": str(device), "backend": backend,
               "camera": options.camera, "resolution": options.resolution,
               "detector": resolve_detector(options.detector), "init": described,
               "schedule": [rigid_steps, full_steps], **prior}
    return FitSession(options, scene, config, context, start)


def fit_start(scene, init) -> tuple[str, str]:
    """Where a run's fits start, from ``--init``: ``"regressor"`` (``regressor``, or ``auto``
    when :func:`flamefit.fitting.landmark_regressor.ready_regressor` has one for the model),
    ``"zero"`` (``zero``, or ``auto`` without a regressor ready: none is trained during a fit
    unless asked for), ``"result"`` (flamefit's own results: a ``flamefit regress`` or ``fit``
    output folder, or a ``params.npz``) or ``"file"`` (other tools' outputs); and how the report
    says it."""
    keyword = init_keyword(init)
    if keyword is None:
        if is_result(Path(init)):
            return RESULT_INIT, "result (flamefit's own parameters)"
        return FILE_INIT, "file"
    if keyword == AUTO_INIT:
        from flamefit.fitting.landmark_regressor import ready_regressor

        regressor = ready_regressor(scene)
        if regressor is None:
            return ZERO_INIT, "zero (auto: no landmark regressor trained for this model; "\
                              "`flamefit train-landmark-regressor` makes one)"
        scene.landmark_regressor = regressor
        return REGRESSOR_INIT, "regressor (auto)"
    return keyword, keyword


def record_failure(summary: FitSummary, out_dir: Path, photo: PlannedPhoto, reason: str,
                   seconds: float) -> None:
    """A photo failed: record it in ``summary`` and in its ``report.json`` (an archive member is
    named as such, not as its local copy); a report that cannot be written is logged."""
    reason = photo.named(reason)
    summary.record(photo.id, photo.input, "failed", reason, seconds)
    try:
        write_failure_report(out_dir / photo.id, photo.id, photo.input, photo.sha256, reason, seconds)
    except OSError as error:
        log.warning("could not write the failure report of %s: %s", photo.input, error)


def run_batch(batch: list[PlannedPhoto], session: FitSession, out_dir: Path, summary: FitSummary,
              bar) -> None:
    """Prepare, fit and write one batch; every failure is recorded for its photo alone.

    ``bar``: a tqdm-like object (``update``, ``set_postfix_str``) the batch reports to."""
    from flamefit.fitting.outputs import write_fit_outputs

    scene, options, config, context = session.scene, session.options, session.config, session.context
    started = time.time()
    by_id = {photo.id: photo for photo in batch}

    def fail(photo: PlannedPhoto, reason: str) -> None:
        record_failure(summary, out_dir, photo, reason, time.time() - started)
        bar.set_postfix_str(f"{len(summary.failed)} failed")

    items: list[PreparedImage] = []
    for photo in batch:
        try:
            items.append(prepare_photo(photo, scene, options))
        except (InputError, ValueError, OSError) as error:
            fail(photo, str(error))
            bar.update(1)
    if not items:
        return
    device = next(scene.buffers()).device
    total = config.rigid_steps + config.full_steps

    def show(state) -> None:
        if state.step % 20 == 0 or state.step == state.steps:
            done = state.step if state.stage == "rigid" else config.rigid_steps + state.step
            bar.set_postfix_str(f"{state.stage} {done}/{total}")

    hook = show
    if options.gif:
        hook = _Snapshots(scene, items, config.resolution, max(1, config.full_steps // 40), show)
    try:
        if session.start == REGRESSOR_INIT:
            regressor_start(scene, items, config.resolution)
        init = _initial_parameters(scene, items, config.resolution, device,
                                   shape_start=config.shape_prior_mean)
        outcome = fit_prepared(scene, items, config, init=init, progress=hook)
    except (InputError, ValueError, RuntimeError) as error:
        for item in items:
            fail(by_id[item.name], f"fit failed: {error}")
        bar.update(len(items))
        return
    seconds = (time.time() - started) / len(items)
    for index, item in enumerate(items):
        photo = by_id[item.name]
        status = outcome.status[index]
        report = {
            **base_report(photo.id, photo.input, photo.sha256),
            "status": "done" if status == "done" else "failed",
            "fit_status": status,
            **context,
            "landmarks_source": item.source,
            "n_faces": item.n_faces,
            "notes": item.notes,
            "image_size": list(item.image.original_size),
            "seconds": round(seconds, 2),
        }
        frames = None if not options.gif else [frame[index] for frame in hook.frames]
        try:
            write_fit_outputs(out_dir / photo.id, item, index, scene, outcome, report, frames=frames,
                              files=options.outputs)
        except (OSError, ValueError, RuntimeError) as error:
            fail(photo, f"could not write results: {error}")
            continue
        if status == "done":
            summary.record(photo.id, photo.input, "fitted", "", seconds, report["landmark_error_percent_iod"])
        else:
            summary.record(photo.id, photo.input, "failed", status, seconds)
    bar.update(len(items))
