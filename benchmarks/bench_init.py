"""Initialisation: the landmark regressor alone, and fits from zero vs from the regressor.

Parts (``--parts``):

* ``regressor``: synthetic renders of the open model (``--renders``, yaw -90..90 evenly, pitch
  ±30, roll ±20, a quarter with an occluder over the mouth or an eye); each is detected
  (``--detector``), and the shipped regressor predicts the head's rotation from the 68 points:
  the median angle to the true rotation overall and for |yaw| >= 45 degrees;
* ``fits``: the first ``--fit-renders`` of those renders fitted twice (zero start, regressor
  start) with ``--iters``: final landmark error (px of the 224² crop), face-vertex error (mm,
  similarity-aligned), failures (final error over 5 % of the inter-ocular distance), and the
  steps and seconds each needs to reach the zero start's final landmark error.

Figures are printed and saved to ``benchmarks/results/init_<date>.json``. Run it alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

SIZE = 512


def renders(count: int, seed: int = 0):
    """``count`` synthetic renders: uint8 images, truth parameters, true 68 landmarks (pixel
    indices), yaws (degrees), occluded flags."""
    from flamefit.fitting.landmark_regressor import _euler_rotation, axis_angle_from_rotation
    from flamefit.fitting.scene import HeadScene
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame import landmark_sets as ibug
    from flamefit.flame.pose_layout import GLOBAL
    from flamefit.flame.selection import select_model

    scene = HeadScene.from_model_files(select_model(open_model=True))
    generator = torch.Generator().manual_seed(seed)
    truth = random_parameters(scene, count, generator, spread=0.8)
    yaw = torch.linspace(-90, 90, count)
    pitch = (torch.rand(count, generator=generator) * 2 - 1) * 30
    roll = (torch.rand(count, generator=generator) * 2 - 1) * 20
    rotation = _euler_rotation(torch.deg2rad(yaw), torch.deg2rad(pitch), torch.deg2rad(roll))
    truth.pose[:, GLOBAL] = axis_angle_from_rotation(rotation)
    truth.camera[:, 0] *= 0.55
    images, landmarks = [], []
    for start in range(0, count, 16):
        chunk = slice(start, min(count, start + 16))
        sub = type(truth)(**{k: v[chunk] for k, v in truth.tensors().items()})
        with torch.no_grad():
            rendered = scene.render(sub, SIZE)
        backdrop = torch.linspace(0.35, 0.65, SIZE)[None, None, :, None]
        image = rendered.image + (1 - rendered.alpha) * backdrop
        images.append(image)
        landmarks.append(rendered.landmarks_px - 0.5)
    images, landmarks = torch.cat(images), torch.cat(landmarks)
    occluded = torch.zeros(count, dtype=torch.bool)
    occluded[1::4] = True
    for index in torch.nonzero(occluded).flatten().tolist():
        region = (ibug.MOUTH, ibug.RIGHT_EYE, ibug.LEFT_EYE)[index % 3]
        points = landmarks[index, region]
        x0, y0 = (points.min(dim=0).values - 8).long().tolist()
        x1, y1 = (points.max(dim=0).values + 12).long().tolist()
        images[index, :, max(y0, 0):y1, max(x0, 0):x1] = torch.tensor([0.8, 0.6, 0.5])[:, None, None]
    rgb = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return scene, rgb, truth, rotation, landmarks.numpy(), yaw.numpy(), occluded.numpy()


def rotation_error_deg(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    relative = predicted @ truth.transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def bench_regressor(data, detector: str) -> tuple[dict, list]:
    from flamefit.fitting.crop import crop_image
    from flamefit.fitting.detect import detect_face
    from flamefit.fitting.landmark_regressor import SHIPPED_REGRESSOR, initial_values, load_regressor
    from flamefit.flame.lbs import batch_rodrigues

    scene, rgb, truth, rotation, _, yaw, occluded = data
    regressor = load_regressor(SHIPPED_REGRESSOR)
    errors, prepared, failures = [], [], 0
    started = time.perf_counter()
    for index in range(len(rgb)):
        try:
            found = detect_face(rgb[index], detector=detector)
        except Exception:  # noqa: BLE001 - counted
            failures += 1
            errors.append(float("nan"))
            prepared.append(None)
            continue
        crop, transform = crop_image(rgb[index], found.landmarks, resolution=224)
        landmarks_crop = transform.to_crop(found.landmarks)
        values = initial_values(regressor, landmarks_crop[None], 224)[0]
        predicted = batch_rodrigues(torch.tensor(values["pose"][None, :3]))
        errors.append(float(rotation_error_deg(predicted, rotation[index:index + 1])[0]))
        prepared.append((crop, landmarks_crop, found))
    seconds = time.perf_counter() - started
    errors = np.array(errors)
    steep = np.abs(yaw) >= 45
    ok = np.isfinite(errors)
    result = {"renders": len(rgb), "detector": detector, "not_detected": failures,
              "median_rotation_error_deg": round(float(np.median(errors[ok])), 2),
              "median_rotation_error_deg_yaw_45_90": round(float(np.median(errors[ok & steep])), 2),
              "median_rotation_error_deg_occluded": round(float(np.median(errors[ok & occluded])), 2),
              "p90_rotation_error_deg": round(float(np.percentile(errors[ok], 90)), 2),
              "detect_and_regress_ms_per_render": round(1000 * seconds / len(rgb), 1),
              "per_yaw_bin": {f"{lo}..{lo + 30}": round(float(np.median(errors[ok & (yaw >= lo) & (yaw < lo + 30 + (lo == 60))])), 2)
                              for lo in range(-90, 90, 30)}}
    return result, prepared


def bench_fits(data, prepared, count: int, iters: tuple[int, int]) -> dict:
    from flamefit.fitting.landmark_regressor import SHIPPED_REGRESSOR, initial_values, load_regressor
    from flamefit.fitting.optimizer import FitConfig, FitStep, fit_batch
    from flamefit.fitting.synthetic import face_vertex_error_mm
    from flamefit.flame.landmark_sets import inter_ocular_distance

    scene, _, truth, _, _, yaw, _ = data
    regressor = load_regressor(SHIPPED_REGRESSOR)
    config = FitConfig(rigid_steps=iters[0], full_steps=iters[1])
    rows = []
    detected = [i for i in range(len(prepared)) if prepared[i] is not None]
    chosen = [detected[int(round(k))] for k in np.linspace(0, len(detected) - 1, min(count, len(detected)))]
    for index in chosen:  # spread over the yaw range (the renders are in yaw order)
        crop, landmarks_crop, _ = prepared[index]
        image = torch.tensor(crop).permute(2, 0, 1)[None].float()
        target = torch.tensor(landmarks_crop[None] + 0.5, dtype=torch.float32)
        skin = torch.ones(1, 1, 224, 224)
        iod = inter_ocular_distance(landmarks_crop)
        row = {"index": index, "yaw": round(float(yaw[index]), 1)}
        for start in ("zero", "regressor"):
            init = None
            if start == "regressor":
                values = initial_values(regressor, landmarks_crop[None], 224)[0]
                init = scene.initial_parameters(1, "cpu")
                for key, value in values.items():
                    target_tensor = getattr(init, key)
                    target_tensor[0, :len(value)] = torch.tensor(value[:target_tensor.shape[1]])
            trace = []

            def hook(state: FitStep, trace=trace) -> None:
                if state.step % 10 == 0:
                    with torch.no_grad():
                        px = scene.landmarks_px(state.params, 224)
                    done = state.step + (config.rigid_steps if state.stage == "full" else 0)
                    trace.append((done, time.perf_counter(), float((px - target).norm(dim=-1).mean())))

            started = time.perf_counter()
            outcome = fit_batch(scene, image, target, skin, config, init=init, progress=hook)
            seconds = time.perf_counter() - started
            final = float(outcome.landmark_error[0])
            # the truth's vertices for the face error, posed with the truth's parameters
            sub = type(truth)(**{k: v[index:index + 1] for k, v in truth.tensors().items()})
            with torch.no_grad():
                vertices = scene.flame(shape=sub.shape, expression=sub.expression, pose=sub.pose).vertices
            row[start] = {"final_px": round(final, 3), "final_percent_iod": round(100 * final / iod, 2),
                          "face_mm_aligned": round(float(face_vertex_error_mm(scene, outcome.params, vertices, align=True)[0]), 2),
                          "seconds": round(seconds, 1), "trace": [(s, round(e, 3)) for s, _, e in trace],
                          "trace_seconds": [round(t - started, 2) for _, t, _ in trace]}
        goal = row["zero"]["final_px"]
        for start in ("zero", "regressor"):
            reached = [(s, t) for (s, e), t in zip(row[start]["trace"], row[start]["trace_seconds"]) if e <= goal * 1.001]
            row[start]["steps_to_zero_final"] = reached[0][0] if reached else None
            row[start]["seconds_to_zero_final"] = reached[0][1] if reached else None
            del row[start]["trace"], row[start]["trace_seconds"]
        rows.append(row)
        print(json.dumps(row))
    summary = {}
    for start in ("zero", "regressor"):
        finals = [r[start]["final_percent_iod"] for r in rows]
        steps = [r[start]["steps_to_zero_final"] for r in rows if r[start]["steps_to_zero_final"] is not None]
        steep = [r for r in rows if abs(r["yaw"]) >= 45]
        summary[start] = {
            "median_final_percent_iod": round(statistics.median(finals), 2),
            "median_face_mm_aligned": round(statistics.median(r[start]["face_mm_aligned"] for r in rows), 2),
            "failures_over_5_percent_iod": sum(f > 5 for f in finals),
            "failures_yaw_45_90": sum(r[start]["final_percent_iod"] > 5 for r in steep),
            "median_steps_to_zero_final": statistics.median(steps) if steps else None,
            "reached_zero_final": len(steps),
            "median_seconds": round(statistics.median(r[start]["seconds"] for r in rows), 1)}
    return {"fits": len(rows), "iters": list(iters), "summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="regressor,fits")
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--fit-renders", type=int, default=12)
    parser.add_argument("--iters", default="200,800")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = renders(args.renders)
    result = {"machine": machine("cpu")}
    regressor_result, prepared = bench_regressor(data, args.detector)
    if "regressor" in args.parts:
        result["regressor"] = regressor_result
        print(json.dumps(regressor_result, indent=1))
    if "fits" in args.parts:
        result["fits"] = bench_fits(data, prepared, args.fit_renders,
                                    tuple(int(v) for v in args.iters.split(",")))
        print(json.dumps(result["fits"]["summary"], indent=1))
    name = f"init_{datetime.date.today().isoformat()}{('_' + args.tag) if args.tag else ''}"
    print("saved", save(name, result))


if __name__ == "__main__":
    main()
