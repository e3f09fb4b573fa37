"""Fitting accuracy on synthetic renders with known answers.

    python benchmarks/bench_accuracy.py                  # 50 renders, default schedule, CPU
    python benchmarks/bench_accuracy.py --n 256 --device cuda --batch 64

Each render has random identity, expression, pose, albedo, light and camera; a fraction get an
occluder. They are fitted from zero with their exact projected landmarks (so this measures the
optimiser and the model, not the detector). Face-vertex errors are reported raw (both meshes
posed by their own parameters) and after a similarity alignment (one orthographic view cannot
tell a bigger head further away from a smaller one; benchmarks such as NoW align likewise). A
fit succeeds when its mean landmark error is under 1.5 px (224² crop) and its aligned mean
face-vertex error under 2 mm. Prints a summary and saves
``benchmarks/results/accuracy_<device>_<date>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

from flamefit.fitting.optimizer import FitConfig, fit_batch  # noqa: E402
from flamefit.fitting.scene import HeadScene  # noqa: E402
from flamefit.fitting.synthetic import face_vertex_error_mm, synthetic_batch  # noqa: E402
from flamefit.flame.selection import select_model  # noqa: E402

LANDMARK_OK_PX = 1.5
VERTEX_OK_MM = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="number of synthetic renders (>= 50)")
    parser.add_argument("--batch", type=int, default=25, help="renders fitted together")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", default="200,800", help="rigid,full steps (default 200,800)")
    parser.add_argument("--occluders", type=float, default=0.3, help="fraction with an occluder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rigid, full = (int(x) for x in args.iters.split(","))
    device = torch.device(args.device)
    files = select_model()
    scene = HeadScene.from_model_files(files)
    resolution = 224
    rows = []
    start = time.perf_counter()
    for first in range(0, args.n, args.batch):
        size = min(args.batch, args.n - first)
        problem = synthetic_batch(scene.cpu(), size, resolution, seed=args.seed + first,
                                  occluder_fraction=args.occluders)
        scene.to(device)
        outcome = fit_batch(scene, problem.images.to(device), problem.landmarks_px.to(device),
                            torch.ones(size, 1, resolution, resolution, device=device),
                            FitConfig(rigid_steps=rigid, full_steps=full))
        fitted = outcome.params.to("cpu")
        vertex_mm = face_vertex_error_mm(scene.cpu(), fitted, problem.vertices)
        aligned_mm = face_vertex_error_mm(scene, fitted, problem.vertices, align=True)
        for i in range(size):
            rows.append({
                "index": first + i,
                "occluded": bool(problem.occluded[i]),
                "status": outcome.status[i],
                "landmark_error_px": float(outcome.landmark_error[i]),
                "face_vertex_error_mm": float(vertex_mm[i]),
                "aligned_face_vertex_error_mm": float(aligned_mm[i]),
                "photometric_error": float(outcome.photometric_error[i]),
            })
        done = len(rows)
        print(f"{done}/{args.n} fitted, {time.perf_counter() - start:.0f} s", flush=True)

    def ok(row):
        return (row["status"] == "done" and row["landmark_error_px"] < LANDMARK_OK_PX
                and row["aligned_face_vertex_error_mm"] < VERTEX_OK_MM)

    def summary(subset):
        if not subset:
            return {}
        return {
            "n": len(subset),
            "success_rate": sum(ok(r) for r in subset) / len(subset),
            "median_face_vertex_error_mm": statistics.median(r["face_vertex_error_mm"] for r in subset),
            "median_aligned_face_vertex_error_mm": statistics.median(
                r["aligned_face_vertex_error_mm"] for r in subset),
            "median_landmark_error_px": statistics.median(r["landmark_error_px"] for r in subset),
            "median_photometric_error": statistics.median(r["photometric_error"] for r in subset),
        }

    result = {
        "all": summary(rows),
        "clean": summary([r for r in rows if not r["occluded"]]),
        "occluded": summary([r for r in rows if r["occluded"]]),
    }
    for name, values in result.items():
        print(f"{name:>9}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in values.items()))
    payload = {"machine": machine(args.device), "model": files.describe(), "iters": [rigid, full],
               "criteria": {"landmark_px": LANDMARK_OK_PX, "aligned_face_vertex_mm": VERTEX_OK_MM},
               "seconds": time.perf_counter() - start, "summary": result, "rows": rows}
    print("saved", save(f"accuracy_{device.type}_{payload['machine']['date'][:10]}", payload))


if __name__ == "__main__":
    main()
