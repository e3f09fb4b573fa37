"""Scale-out throughput: photos/s of ``flamefit fit`` over a dataset in one process and on a
local Ray cluster, the per-photo costs behind them, and an estimate of fitting all 70 000 FFHQ
photos on N GPUs.

Photos: ``--photos`` renders of the open model (random identity, expression, pose, albedo,
light; ``--size`` px) in FFHQ's layout with an ``ffhq-dataset-v2.json`` holding their landmarks,
fitted with ``--landmarks-from-metadata`` (FFHQ ships its landmarks: no detection, as a real FFHQ
run would do).

Measured, each into its own output folder:

1. **per-photo overhead**: one process, ``--iters 1,0`` (one optimiser step): reading, decoding,
   crop, skin, and writing every result file (params, OBJ + GLB, overlay, sheet, report); and
   the same with ``--outputs params`` (the numbers only);
2. **single process**: ``--iters`` (reduced) at batch ``--batch``, ``--threads`` torch threads
   (default 1: on a busy 2-core machine two intra-op threads spin against each other and a fit
   runs several times slower; ``--threads 2`` measures that);
3. **Ray**: the same with ``--ray`` on a local instance of ``--ray-cpus`` CPUs, ``--workers``
   actors of ``--cpus-per-worker`` CPUs and 1 torch thread each; photos/s over the whole run
   (Ray's start and the actors' model loads included) and in the steady state (between the first
   and the last batch done).

Per-photo seconds are split as ``overhead + steps x seconds_per_step`` (from 1 and 2), which
gives the default schedule's (200 + 800 steps) cost on this machine. The FFHQ estimate uses the
GPU figure of ``results/gpu_fit_throughput_2026-11-30.json`` when it exists (keys ``device``,
``batch_sizes``, ``photos_per_second``, ``seconds_per_photo``, ``rigid_steps``, ``full_steps``,
``resolution``); without it, it says so and estimates from this machine's figure (N machines like
this one) and, for scale, from the H100 figure recorded on 2026-11-22 (``fit_cuda_2026-11-22.json``,
the demo head, not a dataset job).

    python benchmarks/bench_scale.py                         # ~3 minutes on 2 cores
    python benchmarks/bench_scale.py --photos 48 --workers 4 --ray-cpus 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, save  # noqa: E402

FFHQ_PHOTOS = 70_000
GPU_FILE = RESULTS / "gpu_fit_throughput_2026-11-30.json"
OLD_GPU_FILE = RESULTS / "fit_cuda_2026-11-22.json"
DEFAULT_STEPS = 200 + 800


def make_dataset(root: Path, count: int, size: int, seed: int) -> Path:
    """``count`` renders of the open model in FFHQ's layout with their metadata; the images folder."""
    import torch
    from PIL import Image

    from flamefit.fitting.scene import HeadScene
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.selection import select_model
    from flamefit.renderer.visualize import to_uint8

    scene = HeadScene.from_model_files(select_model(open_model=True), texture_resolution=128)
    generator = torch.Generator().manual_seed(seed)
    truth = random_parameters(scene, count, generator, spread=0.7)
    with torch.no_grad():
        rendered = scene.render(truth, size)
    background = torch.rand(count, 3, 1, 1, generator=generator) * 0.6 + 0.2
    images = (rendered.image + (1 - rendered.alpha) * background).clamp(0, 1)
    metadata = {}
    for index in range(count):
        name = f"{index // 1000 * 1000:05d}/{index:05d}.png"
        path = root / "images1024x1024" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(images[index])).save(path)
        landmarks = (rendered.landmarks_px[index] - 0.5).double().numpy()
        metadata[str(index)] = {"image": {"file_path": f"images1024x1024/{name}", "pixel_size": [size, size],
                                          "face_landmarks": landmarks.tolist()}}
    (root / "ffhq-dataset-v2.json").write_text(json.dumps(metadata))
    return root / "images1024x1024"


def run(images: Path, out: Path, iters: tuple[int, int], args, ray: bool, outputs: str = "all") -> dict:
    """One ``fit_dataset`` run; its figures."""
    from flamefit.fitting.options import FitOptions
    from flamefit.scale.jobs import fit_dataset
    from flamefit.scale.options import LOCAL_RAY, ScaleOptions
    from flamefit.scale.worker import read_journal

    options = FitOptions(device="cpu", batch_size=args.batch, resolution=args.resolution,
                         rigid_steps=iters[0], full_steps=iters[1], backend="torch", outputs=outputs)
    scale = ScaleOptions(landmarks_from_metadata=True)
    if ray:
        scale = ScaleOptions(ray=LOCAL_RAY, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                             ray_cpus=args.ray_cpus, landmarks_from_metadata=True)
    started = time.perf_counter()
    summary = fit_dataset([images], out, options, scale, show_progress=False)
    seconds = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"fits failed: {summary.failed}")
    row = {"mode": "ray" if ray else "single process", "iters": list(iters), "outputs": outputs,
           "photos": len(summary.fitted),
           "seconds": round(seconds, 2), "photos_per_second": round(len(summary.fitted) / seconds, 4),
           "seconds_per_photo": round(seconds / len(summary.fitted), 3)}
    batches = sorted({line["time"] for line in read_journal(out)})
    lines = read_journal(out)
    if len(batches) > 2:  # steady state: photos of the batches after the first, over their span
        first = batches[0]
        later = [line for line in lines if line["time"] > first]
        row["steady_photos_per_second"] = round(len(later) / (batches[-1] - first), 4)
    if ray:
        row.update(workers=args.workers, cpus_per_worker=args.cpus_per_worker, ray_cpus=args.ray_cpus,
                   workers_seen=len({line["worker"] for line in lines}))
    print(json.dumps(row))
    return row


def gpu_figure() -> dict | None:
    """The best photos/s of the GPU throughput file, or None when it is missing."""
    if not GPU_FILE.is_file():
        return None
    data = json.loads(GPU_FILE.read_text())
    best = int(np.argmax(data["photos_per_second"]))
    return {"source": GPU_FILE.name, "device": data.get("device"), "batch_size": data["batch_sizes"][best],
            "photos_per_second": float(data["photos_per_second"][best]),
            "seconds_per_photo": float(data["seconds_per_photo"][best]),
            "schedule": [data.get("rigid_steps"), data.get("full_steps")], "resolution": data.get("resolution")}


def old_gpu_figure() -> dict | None:
    if not OLD_GPU_FILE.is_file():
        return None
    data = json.loads(OLD_GPU_FILE.read_text())
    best = max(data["rows"], key=lambda r: r["images_per_second"])
    return {"source": OLD_GPU_FILE.name, "device": data["machine"].get("gpu"), "batch_size": best["batch"],
            "backend": best["backend"], "photos_per_second": best["images_per_second"],
            "schedule": data["iters"], "resolution": 224,
            "note": "the optimiser alone on demo-head renders (no reading, no result files), 2026-11-22"}


ESTIMATE_NOTE = ("as_implemented: one actor per GPU reads, prepares and writes its photos between its fits "
                 "(all result files, or --outputs params: the numbers only); io_overlapped: the GPU never "
                 "waits for them (needs cpu_cores_per_gpu_for_io cores per GPU and a pipeline that runs them "
                 "beside the fits, not built); the overheads are measured on one core of this VM, CPU renders "
                 "included (on a GPU host the renders of the pictures move to the GPU)")


def ffhq_estimate(photos_per_second: float, overhead_s: float, overhead_params_s: float,
                  gpus=(1, 2, 4, 8, 16, 32), gpu_hour_usd: float = 2.5) -> list[dict]:
    """Wall time and GPU cost of 70 000 photos on N devices fitting ``photos_per_second`` each
    (see :data:`ESTIMATE_NOTE`): a photo costs an actor ``1 / photos_per_second + overhead``
    as implemented, ``1 / photos_per_second`` when reading and writing run beside the fits."""
    rates = {"as_implemented": 1.0 / (1.0 / photos_per_second + overhead_s),
             "as_implemented_outputs_params": 1.0 / (1.0 / photos_per_second + overhead_params_s),
             "io_overlapped": photos_per_second}
    rows = []
    for n in gpus:
        row = {"gpus": n}
        for name, rate in rates.items():
            hours = FFHQ_PHOTOS / (n * rate) / 3600
            row[name] = {"hours": round(hours, 2), "gpu_hours": round(n * hours, 1),
                         "cost_usd": round(n * hours * gpu_hour_usd)}
        row["cpu_cores_per_gpu_for_io"] = round(photos_per_second * overhead_s, 1)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="photo side, px")
    parser.add_argument("--resolution", type=int, default=224, help="the fit's crop side")
    parser.add_argument("--iters", type=lambda t: tuple(int(v) for v in t.split(",")), default=(10, 40),
                        help="reduced schedule measured (default 10,40)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the single process (default 1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=0.5)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--gpu-hour-usd", type=float, default=2.5,
                        help="price assumed for one GPU hour (default 2.5, an on-demand H100 order of magnitude)")
    parser.add_argument("--keep", action="store_true", help="keep the photos and results (printed)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        images = make_dataset(work / "ffhq", args.photos, args.size, seed=0)
        load_before = os.getloadavg()
        overhead = run(images, work / "overhead", (1, 0), args, ray=False)
        overhead_params = run(images, work / "overhead_params", (1, 0), args, ray=False, outputs="params")
        single = run(images, work / "single", args.iters, args, ray=False)
        ray = run(images, work / "ray", args.iters, args, ray=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    steps = sum(args.iters)
    overhead_s = overhead["seconds_per_photo"]
    step_s = max(single["seconds_per_photo"] - overhead_s, 0.0) / (steps - 1)
    default_s = overhead_s + DEFAULT_STEPS * step_s
    ray_speedup = ray.get("steady_photos_per_second", ray["photos_per_second"]) / single.get(
        "steady_photos_per_second", single["photos_per_second"])
    gpu = gpu_figure()
    overhead_params_s = overhead_params["seconds_per_photo"]
    estimate: dict = {"photos": FFHQ_PHOTOS, "gpu_hour_usd_assumed": args.gpu_hour_usd, "note": ESTIMATE_NOTE}
    if gpu is not None:
        estimate["gpu_figure"] = gpu
        estimate["on_gpus"] = ffhq_estimate(gpu["photos_per_second"], overhead_s, overhead_params_s,
                                            gpu_hour_usd=args.gpu_hour_usd)
    else:
        estimate["gpu_figure"] = f"MISSING: {GPU_FILE.name} does not exist; no GPU throughput of this job was measured"
        cpu_pps = 1.0 / default_s * ray_speedup
        estimate["on_machines_like_this_one"] = [
            {"machines": n, "hours": round(FFHQ_PHOTOS / (n * cpu_pps) / 3600, 1)} for n in (1, 10, 100)]
        old = old_gpu_figure()
        if old is not None:
            estimate["older_gpu_figure"] = old
            estimate["on_gpus_from_older_figure"] = ffhq_estimate(old["photos_per_second"], overhead_s,
                                                                  overhead_params_s, gpu_hour_usd=args.gpu_hour_usd)
    payload = {
        "machine": {**machine("cpu"), "load_average_before": [round(v, 2) for v in load_before]},
        "dataset": f"{args.photos} renders of the open model, {args.size} px, FFHQ layout, metadata landmarks",
        "fit": {"resolution": args.resolution, "batch": args.batch, "iters": list(args.iters),
                "single_process_threads": args.threads},
        "runs": [overhead, overhead_params, single, ray],
        "per_photo": {"overhead_seconds": overhead_s, "overhead_seconds_outputs_params": overhead_params_s,
                      "seconds_per_step": round(step_s, 4),
                      "default_schedule_seconds": round(default_s, 2),
                      "note": "overhead = read, decode, crop, skin, 1 step, write all result files; one "
                              "process; the default schedule's cost extrapolated linearly in steps"},
        "ray_speedup_steady": round(ray_speedup, 3),
        "ffhq_estimate": estimate,
    }
    path = save("scale_2026-11-30", payload)
    print(json.dumps(payload["per_photo"]), json.dumps(payload["ffhq_estimate"], indent=1))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
