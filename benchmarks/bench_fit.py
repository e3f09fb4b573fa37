"""Fitting speed: seconds per image on CPU, images/s on GPU, per batch size and backend.

    python benchmarks/bench_fit.py                       # CPU, default schedule, batch 1
    python benchmarks/bench_fit.py --device cuda --batch 1 16 64 256 --backend torch nvdiffrast
    python benchmarks/bench_fit.py --iters 20,80         # a shorter schedule, scaled per step

Inputs are synthetic renders of the model in use (the open model unless data/flame holds FLAME, or
``--flame-dir``), so
no detector time is included; detection is timed separately by ``--photos DIR`` (dlib, CPU).
Prints a table and saves ``benchmarks/results/fit_<device>_<date>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

from flamefit.fitting.optimizer import FitConfig, fit_batch  # noqa: E402
from flamefit.fitting.scene import HeadScene  # noqa: E402
from flamefit.fitting.synthetic import synthetic_batch  # noqa: E402
from flamefit.flame.selection import select_model  # noqa: E402


def time_fit(scene: HeadScene, renders: HeadScene, batch: int, config: FitConfig, device: torch.device) -> dict:
    """Fit ``batch`` synthetic renders (made on the CPU by ``renders``, a torch-backend scene of
    the same model) with ``scene`` on ``device``; wall time of the fit alone."""
    problem = synthetic_batch(renders, batch, config.resolution, seed=batch)
    scene.to(device)
    images = problem.images.to(device)
    landmarks = problem.landmarks_px.to(device)
    skin = torch.ones(batch, 1, config.resolution, config.resolution, device=device)
    # Warm-up (allocations, kernels, nvdiffrast JIT) on a short schedule.
    fit_batch(scene, images, landmarks, skin, FitConfig(rigid_steps=3, full_steps=3))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    outcome = fit_batch(scene, images, landmarks, skin, config)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    steps = sum(outcome.steps.values())
    return {"batch": batch, "seconds": seconds, "steps": outcome.steps,
            "seconds_per_image": seconds / batch, "images_per_second": batch / seconds,
            "ms_per_step": 1000 * seconds / max(steps, 1),
            "landmark_error_px_median": float(outcome.landmark_error.median())}


def time_detection(folder: Path) -> dict:
    from flamefit.fitting.prepare import prepare_image

    times = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".png", ".jpeg"):
            continue
        start = time.perf_counter()
        try:
            prepare_image(path, path.stem)
        except ValueError:
            continue
        times.append(time.perf_counter() - start)
    return {"photos": len(times), "seconds_per_photo_median": sorted(times)[len(times) // 2] if times else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--backend", nargs="+", default=["torch"], choices=["torch", "nvdiffrast"])
    parser.add_argument("--iters", default="200,800", help="rigid,full steps (default 200,800)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--photos", type=Path, default=None, help="also time detection+crop on these")
    parser.add_argument("--flame-dir", type=Path, default=None,
                        help="a model folder in the FLAME formats (default: the model in use, "
                             "e.g. the procedural test head's cache to compare against it)")
    parser.add_argument("--name", default=None, help="suffix of the saved result file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rigid, full = (int(x) for x in args.iters.split(","))
    device = torch.device(args.device)
    files = select_model(args.flame_dir)
    rows = []
    renders = HeadScene.from_model_files(files)  # the inputs are rendered on the CPU
    for backend in args.backend:
        scene = HeadScene.from_model_files(files, backend=backend)
        for batch in args.batch:
            config = FitConfig(rigid_steps=rigid, full_steps=full, convergence_tol=0.0)
            row = {"backend": backend, **time_fit(scene, renders, batch, config, device)}
            # Scale to the default schedule when a shorter one was timed.
            row["seconds_per_image_default_schedule"] = row["seconds_per_image"] * 1000 / (rigid + full)
            rows.append(row)
            print(f"{backend:>10} batch {batch:>4}: {row['seconds_per_image']:.2f} s/image "
                  f"({row['images_per_second']:.2f} img/s, {row['ms_per_step']:.1f} ms/step); "
                  f"default schedule ~{row['seconds_per_image_default_schedule']:.1f} s/image", flush=True)
    payload = {"machine": machine(args.device), "model": files.describe(), "iters": [rigid, full],
               "rows": rows}
    if args.photos:
        payload["detection"] = time_detection(args.photos)
        print("detection+crop+skin:", payload["detection"])
    date = payload["machine"]["date"][:10]
    print("saved", save(f"fit_{device.type}_{date}" + (f"_{args.name}" if args.name else ""), payload))


if __name__ == "__main__":
    main()
