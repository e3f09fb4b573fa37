"""``flamefit regress``: feed-forward reconstruction with a trained image regressor.

The same plan, preparation and result files as ``flamefit fit`` (:mod:`flamefit.fitting.batch`,
:mod:`flamefit.fitting.results`): photos are detected and cropped by the fit's rule, the crops go
through the network in batches, and each photo gets ``params.npz``, meshes, camera, landmarks,
overlay, sheet and ``report.json`` (with ``"method": "image regressor"``). A rerun skips done
photos; one bad photo fails alone. ``flamefit fit --init OUT`` refines the results (with
:data:`flamefit.fitting.options.RESULT_SCHEDULE`, 0 + 250 steps).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from flamefit.regressor.options import RegressOptions

log = logging.getLogger(__name__)


def _outcome(scene, params, crops: torch.Tensor, landmarks_screen: torch.Tensor, resolution: int):
    """A :class:`flamefit.fitting.optimizer.FitOutcome` for predicted parameters: their 68
    landmarks, the distance to the detected ones, the photometric error on the face region."""
    from flamefit.fitting.optimizer import FitOutcome

    with torch.no_grad():
        rendered = scene.render(params, resolution)
        distance = (rendered.landmarks_px - landmarks_screen).norm(dim=-1).mean(dim=1)
        mask = rendered.face_mask
        photometric = ((rendered.image - crops).abs().mean(dim=1, keepdim=True) * mask).sum(dim=(1, 2, 3)) \
            / mask.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return FitOutcome(params=params, texture_offset=None, status=["done"] * crops.shape[0],
                      landmarks=rendered.landmarks_px, landmark_error=distance,
                      photometric_error=photometric)


def load_scene_for(network, options: RegressOptions, device):
    """The head model the regressor was trained for, as a fit scene on ``device``.

    Raises:
        flamefit.utils.UsageError: the model in use is not the one it was trained for.
    """
    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.renderer.rasterize import resolve_backend
    from flamefit.utils import UsageError

    files = select_model(options.flame_dir, open_model=options.open_model)
    spec = network.spec
    if spec.model_sha256 and model_sha256(files.model) != spec.model_sha256:
        raise UsageError(f"the regressor in {options.model} was trained for another head model "
                         f"({spec.model_description or spec.model_sha256[:12]}), not {files.describe()}; "
                         "pick that model (--flame-dir / --open-model) or train one for this model")
    backend = options.backend if options.backend != "auto" else resolve_backend("auto", device)
    scene = HeadScene.from_model_files(files, n_shape=spec.n_shape, n_expression=spec.n_expression,
                                       n_texture=spec.n_texture, backend=backend).to(device)
    sizes = (scene.flame.n_shape, scene.flame.n_expression, scene.albedo.n_components)
    if sizes != (spec.n_shape, spec.n_expression, spec.n_texture):
        raise UsageError(f"the regressor predicts {spec.n_shape} shape, {spec.n_expression} expression "
                         f"and {spec.n_texture} albedo coefficients but the model in use has {sizes}")
    return files, backend, scene


@dataclasses.dataclass
class RegressSession:
    """What every batch of a run shares: the options, the network and the scene of the model it
    was trained for (on the run's device), and the report fields every photo gets."""

    options: RegressOptions
    network: object
    scene: object
    context: dict


def resolve_options(options: RegressOptions) -> RegressOptions:
    """``options`` checked, with the shipped regressor as ``model`` when none is given.

    Raises:
        UsageError: no regressor (none given and none ships), a batch size below 1.
    """
    from flamefit.utils import UsageError

    if options.model is None:
        from flamefit.fitting.options import SHIPPED_IMAGE_REGRESSOR_DIR

        if not (SHIPPED_IMAGE_REGRESSOR_DIR / "regressor.pt").is_file():
            raise UsageError("no image regressor ships with this flamefit: train one with `flamefit "
                             "train-regressor --out DIR` and pass --model DIR")
        options = dataclasses.replace(options, model=SHIPPED_IMAGE_REGRESSOR_DIR)
    from flamefit.fitting.outputs import OUTPUT_SETS

    if options.outputs not in OUTPUT_SETS:
        raise UsageError(f"--outputs must be one of {', '.join(OUTPUT_SETS)}, got {options.outputs!r}")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {options.batch_size}")
    return options


def load_network(options: RegressOptions, device):
    """The regressor of ``options.model`` on ``device``.

    Raises:
        UsageError: not a regressor this flamefit reads.
    """
    from flamefit.fitting.image_regressor import load_image_regressor
    from flamefit.utils import UsageError

    try:
        return load_image_regressor(options.model, device)
    except ValueError as error:
        raise UsageError(f"--model: {error}") from None


def start_session(options: RegressOptions, device, network=None) -> RegressSession:
    """Load the network (unless given) and its model's scene: what :func:`regress_images` does
    once per run and a scale-out worker (:mod:`flamefit.scale`) once per process.

    Raises:
        UsageError: a bad regressor file, or the model in use is not the one it was trained for.
    """
    from flamefit.fitting.detect import resolve_detector

    network = network if network is not None else load_network(options, device)
    files, backend, scene = load_scene_for(network, options, device)
    context = {"method": "image regressor", "regressor": str(Path(options.model).absolute()),
               "model": files.describe(), "device": str(device), "backend": backend,
               "camera": "orthographic", "resolution": network.spec.resolution,
               "detector": resolve_detector(options.detector)}
    return RegressSession(options, network, scene, context)


def regress_images(inputs: list[str | Path], out_dir: str | Path, options: RegressOptions,
                   show_progress: bool = True):
    """Reconstruct every photo in ``inputs`` with the regressor ``options.model``; writes
    ``OUT/<id>/`` and ``OUT/summary.csv`` like :func:`flamefit.fitting.batch.fit_images`.

    Returns:
        :class:`flamefit.fitting.batch.FitSummary`.

    Raises:
        UsageError: a bad option, input, regressor file or model (nothing was done).
    """
    from tqdm import tqdm

    from flamefit.fitting.batch import FitSummary, check_output_folder
    from flamefit.fitting.plan import collect_photos, plan_fit
    from flamefit.fitting.results import SUMMARY_FILE, write_summary_csv
    from flamefit.renderer.devices import resolve_device
    from flamefit.utils import folder_lock

    options = resolve_options(options)
    device = resolve_device(options.device)
    network = load_network(options, device)
    out_dir = Path(out_dir)
    photos = collect_photos(inputs)
    check_output_folder(out_dir)
    summary = FitSummary(out_dir=out_dir)
    with folder_lock(out_dir):
        plan = plan_fit(photos, out_dir, landmarks=options.landmarks, overwrite=options.overwrite,
                        on_changed=options.on_changed)
        paths = {photo.id: photo.path for photo in photos}
        for photo_id in plan.skipped:
            summary.record(photo_id, paths[photo_id], "skipped", "done before with this photo")
        for photo_id, (path, reason) in plan.refused.items():
            summary.record(photo_id, path, "failed", reason)
        if plan.todo:
            session = start_session(options, device, network)
            bar = tqdm(total=len(plan.todo), desc="photos", unit="photo", disable=not show_progress)
            try:
                for start in range(0, len(plan.todo), options.batch_size):
                    regress_batch(plan.todo[start:start + options.batch_size], session, out_dir, summary, bar)
            finally:
                bar.close()
                write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
        else:
            write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
    return summary


def regress_batch(batch, session: RegressSession, out_dir: Path, summary, bar) -> None:
    """Prepare, predict and write one batch of :class:`flamefit.fitting.plan.PlannedPhoto`; a
    failure is recorded for its photo alone. ``bar``: a tqdm-like object (``update``)."""
    from flamefit.fitting.errors import InputError
    from flamefit.fitting.outputs import write_fit_outputs
    from flamefit.fitting.prepare import prepare_image
    from flamefit.fitting.batch import record_failure
    from flamefit.fitting.results import base_report
    from flamefit.fitting.profile_landmarks import steep_view_refiner

    network, scene, options, context = session.network, session.scene, session.options, session.context
    started = time.time()
    resolution = network.spec.resolution
    steep_view = steep_view_refiner(scene, network)  # on steep profiles, crops around its own points

    def fail(photo, reason: str) -> None:
        record_failure(summary, out_dir, photo, reason, time.time() - started)

    items, planned = [], []
    for photo in batch:
        try:
            items.append(prepare_image(photo.path, photo.id, resolution=resolution,
                                       landmarks_path=photo.landmarks, detector=options.detector,
                                       face_index=options.face_index, steep_view=steep_view))
            planned.append(photo)
        except (InputError, ValueError, OSError) as error:
            fail(photo, str(error))
            bar.update(1)
    if not items:
        return
    device = next(scene.buffers()).device
    crops = torch.tensor(np.stack([it.crop for it in items]), device=device).permute(0, 3, 1, 2).float()
    landmarks = torch.tensor(np.stack([it.landmarks_screen for it in items]), dtype=torch.float32, device=device)
    predicted_at = time.time()
    params = network.predict(crops)
    network_seconds = time.time() - predicted_at
    outcome = _outcome(scene, params, crops, landmarks, resolution)
    seconds = (time.time() - started) / len(items)
    for index, (item, photo) in enumerate(zip(items, planned)):
        report = {**base_report(photo.id, photo.input, photo.sha256), "status": "done", "fit_status": "done",
                  **context, "landmarks_source": item.source, "n_faces": item.n_faces, "notes": item.notes,
                  "image_size": list(item.image.original_size), "seconds": round(seconds, 3),
                  "network_seconds": round(network_seconds / len(items), 4)}
        try:
            write_fit_outputs(out_dir / photo.id, item, index, scene, outcome, report, files=options.outputs)
        except (OSError, ValueError, RuntimeError) as error:
            fail(photo, f"could not write results: {error}")
            continue
        summary.record(photo.id, photo.input, "fitted", "", seconds, report["landmark_error_percent_iod"])
    bar.update(len(items))
