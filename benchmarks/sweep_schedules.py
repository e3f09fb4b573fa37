"""Fit schedules compared on small synthetic sets on the CPU: how the start schedules of
``flamefit.fitting.options`` were chosen where no GPU was lent.

    python benchmarks/sweep_schedules.py landmarks --renders 0:16 --runs RUNS.json --out OUT.json
    python benchmarks/sweep_schedules.py image --renders 16 --runs RUNS.json --out OUT.json

``RUNS.json`` maps a run name to ``{"start": "zero"|"regressor", "iters": [RIGID, FULL],
"config": {FitConfig fields, e.g. "full_lr": 0.02, "final_lr_fraction": 0.05}}``. In the
``landmarks`` part a regressor run starts from ``flamefit fit``'s regressor schedule (its
learning rate and rotation prior, ``REGRESSOR_SCHEDULE``) and ``config`` overrides it
(``"start_rotation_prior": 0`` for the fit without the prior).

* ``landmarks``: renders ``A:B`` of ``bench_init.py``'s prepared set (the MediaPipe detections
  are the targets), the landmark regressor's start vs zero, fitted by ``bench_init.run_fits``
  (the trace to the detected and to the true points, rotation and face errors); summarised as
  ``bench_init.py`` does, including the ground-truth reading;
* ``image``: the first N (or ``A:B``) of ``bench_regressor.py``'s held-out renders (the true 68 points are
  the targets), the image regressor's start vs zero, fitted by
  ``bench_regressor.fit_with_curve``: final landmark error, face error, and the steps to come
  within 1 % of the ``zero_200_800`` run's final error on each render. A regressor run starts
  from ``flamefit fit --init OUT``'s schedule for flamefit's results (``RESULT_SCHEDULE``:
  learning rate, warm-up, identity and expression factors) and ``config`` overrides it (sweep
  files before 2026-12-01 gave every field in ``config``, over ``FitConfig``'s defaults of
  their day).

One torch thread (``--threads``); ``OUT.json`` is rewritten after every run and a rerun skips
the runs it holds, so a long sweep can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

REFERENCE = "zero_200_800"


def sweep_landmarks(first: int, last: int, runs: dict, out: Path, saved: dict) -> dict:
    import bench_init as bi

    arrays = bi.load_prepared(RESULTS / "init_prepared_2026-11-30.npz")
    scene = bi.open_scene(torch.device("cpu"))
    inputs = bi.synthetic_inputs(arrays, scene, torch.device("cpu"))
    keep = slice(first, last)
    inputs = SimpleNamespace(**{k: (v[keep] if isinstance(v, (np.ndarray, list)) else v) for k, v in vars(inputs).items()})
    inputs.truth = type(inputs.truth)(**{k: v[keep] for k, v in inputs.truth.tensors().items()})
    done = saved.setdefault("runs", {})
    saved["yaw"] = inputs.yaw.tolist()
    for name, run in runs.items():
        if name in done:
            continue
        done[name] = bi.run_fits(scene, inputs, run["start"], tuple(run["iters"]), last - first,
                                 torch.device("cpu"), run.get("config"))
        out.write_text(json.dumps(saved))
        print(name, "done", flush=True)
    return bi.summarise(done, inputs.yaw, REFERENCE)


def sweep_image(first: int, last: int, runs: dict, out: Path, saved: dict) -> dict:
    import bench_regressor as br
    from flamefit.fitting.optimizer import FitConfig
    from flamefit.fitting.synthetic import face_vertex_error_mm
    from flamefit.regressor.synthetic_faces import SyntheticFaceSampler, background_bank
    from flamefit.fitting.image_regressor import load_image_regressor
    from flamefit.fitting.options import RESULT_SCHEDULE, SHIPPED_IMAGE_REGRESSOR_DIR
    from flamefit.regressor.training import _step_generator

    device = torch.device("cpu")
    _, scene = br.open_scene(device)
    network = load_image_regressor(SHIPPED_IMAGE_REGRESSOR_DIR, device)
    resolution = network.spec.resolution
    sample = SyntheticFaceSampler(scene, resolution, background_bank(device, seed=1)).sample(
        last, _step_generator(7, 0, "benchmark"))  # bench_regressor's held-out stream
    keep = slice(first, last)
    sample = type(sample)(images=sample.images[keep], landmarks_px=sample.landmarks_px[keep],
                          occluded=sample.occluded[keep], yaw_deg=sample.yaw_deg[keep],
                          truth=type(sample.truth)(**{k: v[keep] for k, v in sample.truth.tensors().items()}))
    with torch.no_grad():
        predicted = network.predict(sample.images)
        skin = scene.render(sample.truth, resolution).face_mask
        truth_vertices = scene.flame(shape=sample.truth.shape, expression=sample.truth.expression,
                                     pose=sample.truth.pose).vertices
    done = saved.setdefault("runs", {})
    for name, run in runs.items():
        if name in done:
            continue
        fields = {}
        if run["start"] == "regressor":  # as `flamefit fit --init OUT` of `flamefit regress` refines it
            fields = {k: v for k, v in RESULT_SCHEDULE.config_fields().items() if k not in ("rigid_steps", "full_steps")}
        fields.update(run.get("config", {}))
        config = FitConfig(resolution=resolution, rigid_steps=run["iters"][0], full_steps=run["iters"][1],
                           convergence_tol=0.0, **fields)
        outcome, steps, curves, seconds = br.fit_with_curve(
            scene, sample.images, sample.landmarks_px, skin, config, predicted if run["start"] == "regressor" else None)
        face = face_vertex_error_mm(scene, outcome.params, truth_vertices, align=True).cpu().numpy()
        done[name] = {"steps": steps.tolist(), "curves": curves.tolist(), "seconds": seconds,
                      "face_mm": face.tolist(), "yaw": sample.yaw_deg.cpu().tolist(), **run}
        out.write_text(json.dumps(saved))
        print(name, "done", flush=True)
    goal = np.array(done[REFERENCE]["curves"])[:, -1]
    summary = {}
    for name, run in done.items():
        curves, steps = np.array(run["curves"]), np.array(run["steps"])
        reach = np.array([br._steps_to_reach(curves[i], steps, goal[i]) for i in range(len(curves))])
        reach[np.isnan(reach)] = np.inf  # never: counted, so the median is over every render
        summary[name] = {"final_landmark_error_px_median": round(float(np.median(curves[:, -1])), 3),
                         "face_vertex_error_mm_median": round(float(np.median(run["face_mm"])), 3),
                         "steps_to_zero_final_median": float(np.median(reach)),
                         "never_reach": int(np.isinf(reach).sum()), "renders": len(curves),
                         "seconds_per_photo": round(run["seconds"] / len(curves), 2),
                         "iters": run["iters"], "config": run.get("config", {})}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=("landmarks", "image"))
    parser.add_argument("--renders", required=True, help="landmarks: A:B of the prepared set; image: N (the first N) or A:B")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the runs' raw traces (resumable)")
    parser.add_argument("--summary", type=Path, default=None, help="default: OUT with _summary")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = json.loads(args.runs.read_text())
    if REFERENCE not in runs:
        raise SystemExit(f"{args.runs}: needs a run named {REFERENCE} (the reference)")
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.part == "landmarks":
        first, last = (int(x) for x in args.renders.split(":"))
        summary = sweep_landmarks(first, last, runs, args.out, saved)
    else:
        first, last = (int(x) for x in args.renders.split(":")) if ":" in args.renders else (0, int(args.renders))
        summary = sweep_image(first, last, runs, args.out, saved)
    result = {"machine": machine("cpu"), "part": args.part, "renders": args.renders, "summary": summary}
    path = args.summary or args.out.with_name(args.out.stem + "_summary.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print("saved", path)


if __name__ == "__main__":
    main()
