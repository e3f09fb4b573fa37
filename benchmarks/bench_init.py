"""Initialisation: the landmark regressor alone, and fits from zero vs from the regressor.

The synthetic set: ``--renders`` renders (512²) of the open model with random identity,
expression, albedo and light; a third turned 45-90 degrees (either side), the rest within ±45,
pitch ±30, roll ±20; a quarter with a skin-coloured patch over the mouth or an eye. Each is
detected (``--detector``) and cropped as ``flamefit fit`` does (224², skin weight, MediaPipe's
478 points when that detector ran).

Parts (``--parts``):

* ``regressor``: the shipped regressor's head rotation from the detected 68 points, and for
  comparison from the exact projected points (with and without detector-like noise): the
  median angle to the true rotation overall and for |yaw| >= 45 degrees; and ``--init auto``'s
  start as ``flamefit fit`` makes it (``init_auto_start``: the image regressor's prediction on
  the steep views the face mesh doubts, the landmark regressor's elsewhere);
* ``fits``: every detected render fitted from zero (``--iters``, the reference schedule, and
  ``--zero-schedules``) and from the regressor with each schedule of ``--regressor-schedules``,
  in batches of ``--batch`` (the JSON is rewritten after each run): final landmark error (vs the detected points, % of the inter-ocular distance,
  and vs the true points), face-vertex error (mm, similarity-aligned), failures (final error
  over 5 % IOD), the steps and seconds each needs to reach the zero start's final landmark error
  (the mean distance to the detected points is recorded every 5 steps); and the ground-truth
  reading (``truth``): the steps to reach the zero start's final distance to the *true* points,
  the head-rotation error and failures by it (over :data:`FAILURE_ROTATION_DEG`);
* ``photos``: the same comparison on real photos (``--photos``; never in tests or the repository).

Two machines: the detectors (dlib, LiteRT) run on the CPU, the fits are fastest on a GPU.

* ``--prepare FILE.npz``: render and detect here, write the truth parameters, the occluder
  boxes, the detected 68 and 478 points (on steep views the image regressor's 68 and its start,
  as ``flamefit fit`` uses them) and small thumbnails of the crops (about 2 MB);
* ``--from-prepared FILE.npz --device cuda``: render the same parameters on the device, check
  the crops against the thumbnails, and run ``--parts`` (the fit path imports torch, numpy,
  scipy and OpenCV only).

Without either, it prepares in memory and runs on ``--device``. Figures are printed and saved
to ``--out`` (default ``benchmarks/results/init_<date>[_tag].json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402


def _importable() -> None:
    """Make ``flamefit`` importable from this checkout when it is not installed (a bare GPU
    machine): its sub-packages are the repository's top-level folders."""
    try:
        import flamefit.fitting  # noqa: F401
    except ImportError:
        root = str(Path(__file__).resolve().parents[1])
        sys.path.insert(0, root)
        for name in [m for m in sys.modules if m == "flamefit" or m.startswith("flamefit.")]:
            del sys.modules[name]
        import flamefit

        flamefit.__path__.append(root)


_importable()

SIZE = 512
CROP = 224
THUMB = 28
PREPARED_VERSION = 2
FAILURE_PERCENT_IOD = 5.0
#: A synthetic fit whose head rotation ends further than this from the truth failed (degrees).
FAILURE_ROTATION_DEG = 15.0
TRACE_EVERY = 5


# -- the synthetic set -------------------------------------------------------------------------
def draw_truth(scene, count: int, seed: int):
    """Parameters of ``count`` renders (CPU generator): returns ``FitParameters`` and the
    yaw / pitch / roll (degrees) and occluded flags (numpy)."""
    from flamefit.fitting.landmark_regressor import _euler_rotation, axis_angle_from_rotation
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.pose_layout import GLOBAL

    generator = torch.Generator().manual_seed(seed)
    truth = random_parameters(scene, count, generator, spread=0.8)
    steep = torch.zeros(count, dtype=torch.bool)
    steep[::3] = True  # a third at 45-90 degrees, alternating sides
    side = torch.where(torch.arange(count) % 2 == 0, 1.0, -1.0)
    uniform = torch.rand(count, generator=generator)
    yaw = torch.where(steep, side * (45 + 45 * uniform), -45 + 90 * uniform)
    pitch = (torch.rand(count, generator=generator) * 2 - 1) * 30
    roll = (torch.rand(count, generator=generator) * 2 - 1) * 20
    rotation = _euler_rotation(torch.deg2rad(yaw), torch.deg2rad(pitch), torch.deg2rad(roll))
    truth.pose[:, GLOBAL] = axis_angle_from_rotation(rotation)
    truth.camera[:, 0] *= 0.55  # the head in a 512² frame with room to turn
    occluded = (torch.arange(count) % 4 == 1)
    return truth, yaw.numpy(), pitch.numpy(), roll.numpy(), occluded.numpy()


def render_images(scene, truth, device, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 512, 512, 3)`` float32 renders over a grey ramp and the true 68 points (pixel
    indices), rendered on ``device``."""
    images, landmarks = [], []
    count = truth.shape.shape[0]
    backdrop = torch.linspace(0.35, 0.65, SIZE, device=device)[None, None, :, None]
    for start in range(0, count, chunk):
        part = slice(start, min(count, start + chunk))
        sub = type(truth)(**{k: v[part].to(device) for k, v in truth.tensors().items()})
        with torch.no_grad():
            rendered = scene.render(sub, SIZE)
            image = rendered.image + (1 - rendered.alpha) * backdrop
        images.append(image.permute(0, 2, 3, 1).cpu().numpy())
        landmarks.append((rendered.landmarks_px - 0.5).cpu().numpy())
    return np.concatenate(images), np.concatenate(landmarks)


def occluder_boxes(landmarks: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """``(N, 4)`` int boxes ``x0, y0, x1, y1`` over the mouth or an eye (zeros: none)."""
    from flamefit.flame import landmark_sets as ibug

    boxes = np.zeros((len(landmarks), 4), np.int64)
    for index in np.flatnonzero(occluded):
        region = (ibug.MOUTH, ibug.RIGHT_EYE, ibug.LEFT_EYE)[index % 3]
        points = landmarks[index, region]
        x0, y0 = np.floor(points.min(axis=0) - 8).astype(int)
        x1, y1 = np.floor(points.max(axis=0) + 12).astype(int)
        boxes[index] = [max(x0, 0), max(y0, 0), x1, y1]
    return boxes


def to_uint8(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = images.copy()
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 > x0:
            out[index, y0:y1, x0:x1] = (0.8, 0.6, 0.5)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def thumbnail(crop: np.ndarray) -> np.ndarray:
    import cv2

    return (cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA) * 255 + 0.5).astype(np.uint8)


def open_scene(device, backend: str = "torch"):
    from flamefit.fitting.batch import ensure_dense_embedding
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    files = select_model(open_model=True)
    scene = HeadScene.from_model_files(files, backend=backend).to(device)
    scene.model_file = files.model
    ensure_dense_embedding(scene)
    return scene


def prepare(count: int, seed: int, detector: str) -> dict:
    """Render on the CPU and detect as ``flamefit fit`` does: the arrays of the prepared file.

    ``detected`` holds the 68 points the fit uses: MediaPipe's, or on a steep view (the mesh's
    presence under 0.5) the image regressor's (:mod:`flamefit.fitting.profile_landmarks`), whose
    start is kept as ``steep_start_<name>`` (NaN rows elsewhere); ``steep_view`` flags them and
    ``presence`` is the mesh's face presence (NaN: another detector, or none found)."""
    from tqdm import tqdm

    from flamefit.fitting.crop import crop_image
    from flamefit.fitting.detect import detect_face
    from flamefit.fitting.mediapipe_detect import N_DENSE
    from flamefit.fitting.profile_landmarks import steep_view_refiner

    scene = open_scene("cpu")
    steep_view = steep_view_refiner(scene)
    truth, yaw, pitch, roll, occluded = draw_truth(scene, count, seed)
    images, true_landmarks = render_images(scene, truth, "cpu")
    boxes = occluder_boxes(true_landmarks, occluded)
    rgb = to_uint8(images, boxes)
    detected = np.full((count, 68, 2), np.nan, np.float32)
    dense = np.full((count, N_DENSE, 2), np.nan, np.float32)
    thumbs = np.zeros((count, THUMB, THUMB, 3), np.uint8)
    presence = np.full(count, np.nan, np.float32)
    steep = np.zeros(count, bool)
    starts = {key: np.full((count, *value.shape[1:]), np.nan, np.float32)
              for key, value in scene.initial_parameters(1, "cpu").tensors().items()}
    names = []
    for index in tqdm(range(count), desc="detecting", unit="render"):
        try:
            found = detect_face(rgb[index], detector=detector, all_profiles=steep_view is not None)
        except Exception as error:  # noqa: BLE001 - a render without a face is counted
            names.append(f"none: {type(error).__name__}")
            continue
        names.append(found.detector)
        presence[index] = np.nan if found.mesh_presence is None else found.mesh_presence
        if steep_view is not None and found.steep_view:
            regressed = steep_view(rgb[index], found.landmarks)
            detected[index], steep[index] = regressed.landmarks, True
            for key, value in regressed.start.items():
                starts[key][index] = value
        else:
            detected[index] = found.landmarks
            if found.dense is not None:
                dense[index] = found.dense
        thumbs[index] = thumbnail(crop_image(rgb[index], detected[index], resolution=CROP)[0])
    arrays = {f"truth_{k}": v.numpy() for k, v in truth.tensors().items()}
    arrays.update(version=np.int64(PREPARED_VERSION), seed=np.int64(seed), yaw=yaw, pitch=pitch,
                  roll=roll, occluded=occluded, occluder_boxes=boxes,
                  true_landmarks=true_landmarks.astype(np.float32), detected=detected, dense=dense,
                  thumbnails=thumbs, detector=np.array(names), presence=presence, steep_view=steep,
                  **{f"steep_start_{key}": value for key, value in starts.items()})
    return arrays


def save_prepared(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_prepared(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    version = int(arrays.get("version", -1))
    if version == 1:  # before steep views: MediaPipe's points everywhere
        count = len(arrays["yaw"])
        arrays.update(presence=np.full(count, np.nan, np.float32), steep_view=np.zeros(count, bool))
    elif version != PREPARED_VERSION:
        raise SystemExit(f"{path}: prepared by another version of bench_init (want {PREPARED_VERSION})")
    return arrays


def synthetic_inputs(arrays: dict, scene, device) -> SimpleNamespace:
    """Re-render the prepared parameters on ``device`` and crop each detected render as
    ``flamefit fit`` does: stacked crops, skin weights, detected 68 and 478 points and the true
    68 (crop pixel indices), the truth parameters and a check against the thumbnails."""
    from flamefit.fitting.crop import crop_image
    from flamefit.fitting.parameters import FitParameters
    from flamefit.fitting.skin_mask import skin_probability

    truth = FitParameters(**{k[len("truth_"):]: torch.from_numpy(v) for k, v in arrays.items()
                             if k.startswith("truth_")})
    images, true_landmarks = render_images(scene, truth, device)
    rgb = to_uint8(images, arrays["occluder_boxes"])
    found = np.flatnonzero(np.isfinite(arrays["detected"]).all(axis=(1, 2)))
    crops, skins, landmarks, dense, truth_crop, diffs = [], [], [], [], [], []
    for index in found:
        crop, transform = crop_image(rgb[index], arrays["detected"][index], resolution=CROP)
        landmarks_crop = transform.to_crop(arrays["detected"][index].astype(np.float64))
        crops.append(crop)
        landmarks.append(landmarks_crop)
        skins.append(skin_probability(crop, landmarks_crop) * transform.inside_image_mask(rgb.shape[1:3]))
        dense.append(transform.to_crop(arrays["dense"][index].astype(np.float64)))
        truth_crop.append(transform.to_crop(true_landmarks[index].astype(np.float64)))
        diffs.append(np.abs(thumbnail(crop).astype(int) - arrays["thumbnails"][index].astype(int)).mean())
    sub = FitParameters(**{k: v[torch.as_tensor(found)] for k, v in truth.tensors().items()})
    starts = [{key[len("steep_start_"):]: arrays[key][index] for key in arrays if key.startswith("steep_start_")}
              if arrays["steep_view"][index] else None for index in found]
    return SimpleNamespace(
        index=found, crops=np.stack(crops).astype(np.float32), skin=np.stack(skins).astype(np.float32),
        landmarks_crop=np.stack(landmarks), dense_crop=np.stack(dense), truth_crop=np.stack(truth_crop),
        truth=sub, yaw=arrays["yaw"][found], occluded=arrays["occluded"][found],
        names=[f"render_{i:03d}" for i in found], steep_starts=starts,
        check={"renders": len(arrays["yaw"]), "detected": len(found),
               "thumbnail_mean_abs_diff_max": round(float(max(diffs)), 3),
               "thumbnail_mean_abs_diff_median": round(float(np.median(diffs)), 3)})


# -- the regressor alone -----------------------------------------------------------------------
def rotation_error_deg(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    relative = predicted @ truth.transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def regressor_rotation_errors(regressor, landmarks_crop: np.ndarray, truth_pose: torch.Tensor) -> np.ndarray:
    from flamefit.fitting.landmark_regressor import initial_values
    from flamefit.flame.lbs import batch_rodrigues

    values = initial_values(regressor, landmarks_crop, CROP)
    predicted = batch_rodrigues(torch.tensor(np.stack([v["pose"][:3] for v in values])))
    return rotation_error_deg(predicted, batch_rodrigues(truth_pose[:, :3].float().cpu())).numpy()


def _medians(errors: np.ndarray, yaw: np.ndarray, occluded: np.ndarray) -> dict:
    steep = np.abs(yaw) >= 45
    return {"median_deg": round(float(np.median(errors)), 2),
            "median_deg_yaw_45_90": round(float(np.median(errors[steep])), 2),
            "median_deg_yaw_under_45": round(float(np.median(errors[~steep])), 2),
            "median_deg_occluded": round(float(np.median(errors[occluded])), 2),
            "p90_deg": round(float(np.percentile(errors, 90)), 2),
            "per_yaw_bin": {f"{lo}..{lo + 30}": round(float(np.median(errors[(yaw >= lo) & (yaw < lo + 30 + (lo == 60))])), 2)
                            for lo in range(-90, 90, 30)
                            if ((yaw >= lo) & (yaw < lo + 30 + (lo == 60))).any()}}


def bench_regressor(inputs: SimpleNamespace, path: Path | None = None) -> dict:
    from flamefit.fitting.landmark_regressor import SHIPPED_REGRESSOR, load_regressor

    regressor = load_regressor(path or SHIPPED_REGRESSOR)
    if regressor is None:
        raise SystemExit(f"{path or SHIPPED_REGRESSOR}: not a landmark regressor of this version")
    pose = inputs.truth.pose
    generator = np.random.default_rng(0)
    size = np.ptp(inputs.truth_crop, axis=1).max(axis=1)
    noisy = inputs.truth_crop + generator.normal(size=inputs.truth_crop.shape) * 0.01 * size[:, None, None]
    from_detected = regressor_rotation_errors(regressor, inputs.landmarks_crop, pose)
    # --init auto's start as `flamefit fit` makes it: the image regressor's on steep views
    steep = np.array([start is not None for start in inputs.steep_starts])
    auto = from_detected.copy()
    if steep.any():
        from flamefit.flame.lbs import batch_rodrigues

        predicted = np.stack([inputs.steep_starts[i]["pose"][:3] for i in np.flatnonzero(steep)])
        auto[steep] = rotation_error_deg(batch_rodrigues(torch.tensor(predicted).float()),
                                         batch_rodrigues(pose[torch.as_tensor(np.flatnonzero(steep)), :3].float().cpu())).numpy()
    result = {"renders": int(len(inputs.index)),
              "from_detected": _medians(from_detected, inputs.yaw, inputs.occluded),
              "init_auto_start": {**_medians(auto, inputs.yaw, inputs.occluded), "steep_views": int(steep.sum()),
                                  "steep_view_yaws": [round(float(y)) for y in inputs.yaw[steep]],
                                  "steep_view_errors_deg": [round(float(e), 2) for e in auto[steep]]},
              "from_true_points": _medians(regressor_rotation_errors(regressor, inputs.truth_crop, pose),
                                           inputs.yaw, inputs.occluded),
              "from_true_points_noise_1_percent": _medians(regressor_rotation_errors(regressor, noisy, pose),
                                                           inputs.yaw, inputs.occluded)}
    detector_error = np.linalg.norm(inputs.landmarks_crop - inputs.truth_crop, axis=-1)  # (N, 68)
    iod = _iod(inputs.truth_crop)
    steep = np.abs(inputs.yaw) >= 45
    result["detector_nme_percent_iod"] = {
        "median": round(float(np.median(detector_error.mean(axis=1) / iod * 100)), 2),
        "median_yaw_45_90": round(float(np.median(detector_error[steep].mean(axis=1) / iod[steep] * 100)), 2)}
    return result


def _iod(landmarks: np.ndarray) -> np.ndarray:
    from flamefit.flame.landmark_sets import inter_ocular_distance

    return np.array([inter_ocular_distance(points) for points in landmarks])


# -- fits --------------------------------------------------------------------------------------
def run_fits(scene, inputs: SimpleNamespace, start: str, iters: tuple[int, int], batch: int,
             device, config_fields: dict | None = None) -> list[dict]:
    """Fit every input from ``start`` (``"zero"`` or ``"regressor"``) with ``iters``, in batches:
    per input the final errors, the landmark error every :data:`TRACE_EVERY` steps and the
    seconds (the batch's wall time shared among its photos) at those steps."""
    from flamefit.fitting.batch import _initial_parameters, regressor_start
    from flamefit.fitting.optimizer import FitConfig, fit_batch
    from flamefit.fitting.synthetic import face_vertex_error_mm
    from flamefit.flame.lbs import batch_rodrigues
    from flamefit.renderer.pixel_frames import index_to_screen

    fields = {}
    if start == "regressor":  # the regressor schedule's learning rate and rotation prior
        from flamefit.fitting.options import REGRESSOR_SCHEDULE

        fields = {k: v for k, v in REGRESSOR_SCHEDULE.config_fields().items() if k not in ("rigid_steps", "full_steps")}
    fields.update(config_fields or {})
    config = FitConfig(resolution=CROP, rigid_steps=iters[0], full_steps=iters[1], **fields)
    rows = []
    for first in range(0, len(inputs.crops), batch):
        part = slice(first, min(len(inputs.crops), first + batch))
        n = part.stop - part.start
        # Like `flamefit fit`: a steep view starts from the image regressor's prediction, unless
        # the zero start was asked for; the others from the landmark regressor's.
        items = [SimpleNamespace(init=inputs.steep_starts[i] if start == "regressor" else None, notes=[],
                                 landmarks_crop=inputs.landmarks_crop[i],
                                 landmarks_screen=index_to_screen(inputs.landmarks_crop[i]))
                 for i in range(part.start, part.stop)]
        images = torch.tensor(inputs.crops[part], device=device).permute(0, 3, 1, 2)
        target = torch.tensor(index_to_screen(inputs.landmarks_crop[part]), dtype=torch.float32, device=device)
        dense = torch.tensor(index_to_screen(inputs.dense_crop[part]), dtype=torch.float32, device=device)
        skin = torch.tensor(inputs.skin[part], device=device)[:, None]
        true_px = None if inputs.truth_crop is None else torch.tensor(
            index_to_screen(inputs.truth_crop[part]), dtype=torch.float32, device=device)
        trace, clock = [], []

        def hook(state, trace=trace, clock=clock, target=target) -> None:
            done = state.step + (config.rigid_steps if state.stage == "full" else 0)
            if done % TRACE_EVERY == 0:
                with torch.no_grad():
                    px = scene.landmarks_px(state.params, CROP)
                    vs_truth = None if true_px is None else (px - true_px).norm(dim=-1).mean(dim=1)
                    trace.append((done, (px - target).norm(dim=-1).mean(dim=1), vs_truth))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                clock.append(time.perf_counter())

        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        init = None
        if start == "regressor":
            regressor_start(scene, items, CROP)
            init = _initial_parameters(scene, items, CROP, device)
        outcome = fit_batch(scene, images, target, skin, config, init=init, progress=hook,
                            dense_px=dense if torch.isfinite(dense).any() else None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        steps = [s for s, _, _ in trace]
        errors = torch.stack([e for _, e, _ in trace], dim=1).cpu().numpy() if trace else np.zeros((n, 0))
        errors_truth = torch.stack([t for _, _, t in trace], dim=1).cpu().numpy() \
            if trace and true_px is not None else None
        at = [(t - started) / n for t in clock]
        truth = type(inputs.truth)(**{k: v[part].to(device) for k, v in inputs.truth.tensors().items()}) \
            if inputs.truth is not None else None
        face_mm, rotation_deg = [None] * n, [None] * n
        if truth is not None:
            with torch.no_grad():
                vertices = scene.flame(shape=truth.shape, expression=truth.expression, pose=truth.pose).vertices
            face_mm = face_vertex_error_mm(scene, outcome.params, vertices, align=True).cpu().tolist()
            rotation_deg = rotation_error_deg(batch_rodrigues(outcome.params.pose[:, :3].float()),
                                              batch_rodrigues(truth.pose[:, :3].float())).cpu().tolist()
        fitted = (outcome.landmarks.cpu().numpy() - 0.5)
        for k, i in enumerate(range(part.start, part.stop)):
            iod = _iod(inputs.landmarks_crop[i:i + 1])[0]
            row = {"name": inputs.names[i], "final_px": float(outcome.landmark_error[k]),
                   "final_percent_iod": 100 * float(outcome.landmark_error[k]) / iod,
                   "status": outcome.status[k], "seconds": seconds / n,
                   "steps": steps, "trace_px": errors[k].tolist(), "trace_seconds": at}
            if inputs.truth_crop is not None:
                truth_iod = _iod(inputs.truth_crop[i:i + 1])[0]
                row["final_vs_truth_percent_iod"] = 100 * float(
                    np.linalg.norm(fitted[k] - inputs.truth_crop[i], axis=-1).mean()) / truth_iod
                row["face_mm_aligned"] = face_mm[k]
                row["rotation_error_deg"] = rotation_deg[k]
                # the last recorded distance (every TRACE_EVERY steps; None if the run was shorter)
                row["final_vs_truth_px"] = float(errors_truth[k, -1]) if errors_truth is not None else None
                row["trace_truth_px"] = errors_truth[k].tolist() if errors_truth is not None else []
            rows.append(row)
        print(f"  {start} {iters[0]},{iters[1]}: {part.stop}/{len(inputs.crops)} fitted, "
              f"{seconds:.1f} s for {n}", flush=True)
    return rows


def _reach(row: dict, goal: float, trace: str = "trace_px", tolerance: float = 1.001
           ) -> tuple[int | None, float | None]:
    for step, error, seconds in zip(row["steps"], row[trace], row["trace_seconds"]):
        if error <= goal * tolerance:
            return step, seconds
    return None, None


def _truth_figures(rows: list[dict], reference_rows: list[dict], steep: np.ndarray) -> dict:
    """The ground-truth reading of a synthetic run: steps to reach the zero start's final
    distance to the *true* points (within 1 %; a render that never does counts as never, so the
    median is over all renders), head-rotation error, and failures by rotation."""
    goals = [row["final_vs_truth_px"] for row in reference_rows]
    reached = np.array([None if goal is None else _reach(row, goal, "trace_truth_px", 1.01)[0]
                        for row, goal in zip(rows, goals)], dtype=float)  # None -> nan
    reached[np.isnan(reached)] = np.inf
    total = max((row["steps"][-1] for row in rows if row["steps"]), default=0)
    rotation = np.array([row["rotation_error_deg"] for row in rows])
    failed = rotation > FAILURE_ROTATION_DEG
    finals = [row["final_vs_truth_px"] for row in rows if row["final_vs_truth_px"] is not None]
    return {"median_final_vs_truth_px": round(float(np.median(finals)), 3) if finals else None,
            "median_steps_to_reference_final_vs_truth": float(np.median(reached)),
            "reached_reference_final_vs_truth": int(np.isfinite(reached).sum()),
            "steps_in_schedule": int(total),
            "median_rotation_error_deg": round(float(np.median(rotation)), 2),
            "median_rotation_error_deg_yaw_45_90": round(float(np.median(rotation[steep])), 2) if steep.any() else None,
            f"failures_rotation_over_{FAILURE_ROTATION_DEG:g}_deg": int(failed.sum()),
            f"failures_rotation_over_{FAILURE_ROTATION_DEG:g}_deg_yaw_45_90": int((failed & steep).sum())}


def summarise(runs: dict[str, list[dict]], yaw: np.ndarray | None, reference: str) -> dict:
    """Per run: medians, failures, and steps/seconds to reach ``reference``'s final error."""
    goals = [row["final_px"] for row in runs[reference]]
    steep = np.zeros(len(goals), bool) if yaw is None else np.abs(yaw) >= 45
    summary = {}
    for name, rows in runs.items():
        reached = [_reach(row, goal) for row, goal in zip(rows, goals)]
        steps = [s for s, _ in reached if s is not None]
        seconds = [t for _, t in reached if t is not None]
        finals = np.array([row["final_percent_iod"] for row in rows])
        failed = finals > FAILURE_PERCENT_IOD
        entry = {"median_final_percent_iod": round(float(np.median(finals)), 3),
                 "mean_final_percent_iod": round(float(np.mean(finals)), 3),
                 "failures_over_5_percent_iod": int(failed.sum()),
                 "failures_yaw_45_90": int((failed & steep).sum()),
                 "renders_yaw_45_90": int(steep.sum()),
                 "not_done": sum(row["status"] != "done" for row in rows),
                 "median_seconds_per_photo": round(float(np.median([row["seconds"] for row in rows])), 3),
                 "reached_reference_final": len(steps), "of": len(rows),
                 "median_steps_to_reference_final": None if not steps else float(np.median(steps)),
                 "median_seconds_to_reference_final": None if not seconds else round(float(np.median(seconds)), 3),
                 "median_final_minus_reference_percent_iod": round(float(np.median(
                     finals - np.array([r["final_percent_iod"] for r in runs[reference]]))), 3)}
        if "face_mm_aligned" in rows[0]:
            entry["median_face_mm_aligned"] = round(float(np.median([row["face_mm_aligned"] for row in rows])), 3)
            entry["median_final_vs_truth_percent_iod"] = round(float(np.median(
                [row["final_vs_truth_percent_iod"] for row in rows])), 3)
            entry["truth"] = _truth_figures(rows, runs[reference], steep)
        summary[name] = entry
    return summary


def bench_fits(scene, inputs: SimpleNamespace, iters: tuple[int, int], schedules: list[tuple[int, int]],
               batch: int, device, zero_schedules: list[tuple[int, int]] = (),
               saved: Callable[[dict], None] | None = None, regressor_fields: dict | None = None) -> dict:
    """The zero start with ``iters`` (the reference) and ``zero_schedules``, the regressor's
    start with ``schedules`` (and ``regressor_fields`` over the regressor schedule's
    :class:`FitConfig` fields); ``saved`` gets the figures so far after each run (a run cut off
    by a time limit keeps the runs before it)."""
    runs = {}
    reference = f"zero_{iters[0]}_{iters[1]}"
    for start, plan in [("zero", [iters, *zero_schedules]), ("regressor", schedules)]:
        for steps in plan:
            fields = regressor_fields if start == "regressor" else None
            runs[f"{start}_{steps[0]}_{steps[1]}"] = run_fits(scene, inputs, start, steps, batch, device, fields)
            if saved is not None:
                saved(_fit_figures(runs, reference, inputs, batch))
    return _fit_figures(runs, reference, inputs, batch)


def _fit_figures(runs: dict[str, list[dict]], reference: str, inputs: SimpleNamespace, batch: int) -> dict:
    summary = summarise(runs, inputs.yaw, reference)
    compact = {name: [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                       if k not in ("steps", "trace_px", "trace_seconds", "trace_truth_px")} for row in rows]
               for name, rows in runs.items()}
    traces = {name: _median_trace(rows) for name, rows in runs.items()}
    return {"fits": len(inputs.crops), "reference": reference, "batch": batch, "summary": summary,
            "median_traces": traces, "rows": compact}


def _median_trace(rows: list[dict]) -> dict:
    """The median landmark error per recorded step; a fit that stopped early (converged) keeps
    its last value."""
    longest = max(rows, key=lambda row: len(row["steps"]))["steps"]
    padded = np.array([row["trace_px"] + [row["trace_px"][-1]] * (len(longest) - len(row["trace_px"]))
                       if row["trace_px"] else [np.nan] * len(longest) for row in rows])
    return {"steps": longest, "median_px": np.median(padded, axis=0).round(3).tolist()}


def _writer(out: Path, result: dict, key: str) -> Callable[[dict], None]:
    def save(figures: dict) -> None:
        result[key] = figures
        out.write_text(json.dumps(result, indent=1) + "\n")
    return save


def photo_inputs(folder: Path, detector: str) -> SimpleNamespace:
    from flamefit.fitting.plan import collect_photos
    from flamefit.fitting.prepare import prepare_image
    from flamefit.fitting.mediapipe_detect import N_DENSE

    items = []
    for photo in collect_photos([folder]):
        try:
            items.append(prepare_image(photo.path, photo.id, resolution=CROP, detector=detector))
        except Exception as error:  # noqa: BLE001 - reported
            print(f"  {photo.path.name}: {error}")
    missing = np.full((N_DENSE, 2), np.nan)
    return SimpleNamespace(
        index=np.arange(len(items)), crops=np.stack([it.crop for it in items]).astype(np.float32),
        skin=np.stack([it.skin for it in items]).astype(np.float32),
        landmarks_crop=np.stack([it.landmarks_crop for it in items]),
        dense_crop=np.stack([missing if it.dense_crop is None else it.dense_crop for it in items]),
        truth_crop=None, truth=None, yaw=None, occluded=None, names=[it.name for it in items],
        steep_starts=[it.init for it in items])


# -- command line ------------------------------------------------------------------------------
def _pairs(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split(",")) for item in text.split(";") if item.strip()]


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="regressor,fits", help="regressor, fits, photos (comma-separated)")
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--prepare", type=Path, default=None, metavar="FILE.npz",
                        help="render and detect, write FILE.npz and stop")
    parser.add_argument("--from-prepared", type=Path, default=None, metavar="FILE.npz")
    parser.add_argument("--limit", type=int, default=None, help="use the first N detected renders only")
    parser.add_argument("--min-yaw", type=float, default=None, metavar="DEG",
                        help="use the detected renders turned at least DEG (either side) only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--batch", type=int, default=200, help="fits per batch (the photos part fits one at a time)")
    parser.add_argument("--iters", default="200,800", help="the zero start's schedule, the reference")
    parser.add_argument("--regressor-schedules", default="50,800;50,300;50,200",
                        help="the regressor start's schedules, RIGID,FULL;...")
    parser.add_argument("--zero-schedules", default="", help="more schedules for the zero start")
    parser.add_argument("--start-rotation-prior", type=float, default=None, metavar="W",
                        help="the regressor start's rotation prior (default: flamefit fit's, "
                             "REGRESSOR_SCHEDULE; 0 turns it off)")
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "photos")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--regressor", type=Path, default=None,
                        help="the regressor part's weights (default: the shipped ones)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.prepare is not None:
        arrays = prepare(args.renders, args.seed, args.detector)
        path = save_prepared(args.prepare, arrays)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB; "
              f"{int(np.isfinite(arrays['detected']).all(axis=(1, 2)).sum())} of {args.renders} detected)")
        return path
    parts = set(args.parts.split(","))
    regressor_fields = None if args.start_rotation_prior is None else {"start_rotation_prior": args.start_rotation_prior}
    arrays = None
    if parts & {"regressor", "fits"}:
        arrays = load_prepared(args.from_prepared) if args.from_prepared else prepare(args.renders, args.seed, args.detector)
    started = time.time()
    scene = open_scene(device, args.backend)
    result = {"machine": machine(str(device)), "args": {k: str(v) for k, v in vars(args).items()}}
    out = args.out or RESULTS / f"init_{datetime.date.today().isoformat()}{('_' + args.tag) if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if parts & {"regressor", "fits"}:
        inputs = synthetic_inputs(arrays, scene, device)
        if args.limit or args.min_yaw is not None:
            keep = np.arange(len(inputs.crops))
            if args.min_yaw is not None:
                keep = keep[np.abs(inputs.yaw) >= args.min_yaw]
            keep = keep[:args.limit] if args.limit else keep
            inputs = SimpleNamespace(**{k: (v[keep] if isinstance(v, np.ndarray) else
                                            [v[i] for i in keep] if isinstance(v, list) else v)
                                        for k, v in vars(inputs).items()})
            inputs.truth = type(inputs.truth)(**{k: v[torch.as_tensor(keep)] for k, v in inputs.truth.tensors().items()})
        result["synthetic"] = {**inputs.check, "used": len(inputs.crops),
                               "yaw_45_90": int((np.abs(inputs.yaw) >= 45).sum()),
                               "occluded": int(inputs.occluded.sum())}
        print(json.dumps(result["synthetic"]))
        if "regressor" in parts:
            result["regressor"] = bench_regressor(inputs, args.regressor)
            print(json.dumps(result["regressor"], indent=1))
        if "fits" in parts:
            result["fits"] = bench_fits(scene, inputs, _pairs(args.iters)[0], _pairs(args.regressor_schedules),
                                        args.batch, device, _pairs(args.zero_schedules),
                                        _writer(out, result, "fits"), regressor_fields)
            print(json.dumps(result["fits"]["summary"], indent=1))
    if "photos" in parts:
        inputs = photo_inputs(args.photos, args.detector)
        result["photos"] = bench_fits(scene, inputs, _pairs(args.iters)[0], _pairs(args.regressor_schedules),
                                      1, device, _pairs(args.zero_schedules), _writer(out, result, "photos"),
                                      regressor_fields)
        print(json.dumps(result["photos"]["summary"], indent=1))
    result["seconds"] = round(time.time() - started, 1)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("saved", out)
    return out


if __name__ == "__main__":
    main()
