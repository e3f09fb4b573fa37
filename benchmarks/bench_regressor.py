"""The image regressor: training within a time budget, its errors on held-out synthetic renders,
fits started from it vs from zero, and its speed.

    python benchmarks/bench_regressor.py train --device cuda --budget-minutes 4 --out DIR
    python benchmarks/bench_regressor.py evaluate --model DIR --device cuda --renders 500 --fits 100

``train``: a 12-step probe measures the seconds per step at ``--batch-size``, then a run of as
many steps as fit ``--budget-minutes`` trains on synthetic renders of the open model (cosine
schedule over exactly those steps); ``DIR`` gets ``regressor.pt``, ``training.json``,
``training.png`` (the checkpoint goes to ``--work``).

``evaluate``: ``--renders`` held-out renders (another seed stream than training's and
validation's: the same sampler, backgrounds, occluders on a quarter): the regressor's global
rotation error (degrees), 68-landmark error (crop px and % of the landmarks' box) and
similarity-aligned face-vertex error (mm), overall, for |yaw| >= 45 and with occluders; its
throughput at ``--batch`` (network only, excluding detection); and on the first ``--fits``
renders, fits from zero (``--iters``) and from the regressor (each of ``--regressor-iters``:
with a good start the rigid stage can be short or skipped) with the 68 true landmarks as
targets and the true face region as the photometric mask: final landmark error, face-vertex
error, and the steps each start needs to reach the zero start's final landmark error.

Saves JSON to ``--json`` (default ``benchmarks/results/regressor_<device>_<date>.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402


def open_scene(device: torch.device):
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.renderer.rasterize import resolve_backend

    files = select_model(open_model=True)
    scene = HeadScene.from_model_files(files, backend=resolve_backend("auto", device)).to(device)
    return files, scene


def train(args) -> None:
    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.regressor.options import TrainingSettings
    from flamefit.regressor.training import train_regressor

    device = torch.device(args.device)
    files, scene = open_scene(device)
    sha = model_sha256(files.model)
    import tempfile

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="flamefit_regressor_"))
    if (work / "probe").exists() or (work / "run").exists():
        raise SystemExit(f"--work {work} holds an earlier run; give an empty folder")
    probe = TrainingSettings(steps=12, batch_size=args.batch_size, width=args.width, validation_size=8,
                             validation_every=1000, checkpoint_every=1000, device=args.device)
    started = time.time()
    marks: list[float] = []

    def mark(step: int, loss: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks.append(time.time())

    train_regressor(scene, work / "probe", probe, model_sha256=sha, show_progress=False, progress=mark)
    per_step = (marks[-1] - marks[4]) / (len(marks) - 5)
    spent = (time.time() - started) / 60
    budget = args.budget_minutes - spent
    # validations (about 12 in the run) and checkpoints cost a little: keep 8 % for them
    steps = max(50, int(budget * 60 * 0.92 / per_step))
    print(f"probe: {per_step * 1000:.0f} ms/step at batch {args.batch_size}; {budget:.2f} min left -> "
          f"{steps} steps ({steps * args.batch_size} samples)", flush=True)
    settings = TrainingSettings(steps=steps, batch_size=args.batch_size, width=args.width,
                                learning_rate=args.learning_rate, validation_size=args.validation_size,
                                validation_every=max(50, steps // 12), checkpoint_every=max(100, steps // 4),
                                device=args.device, minutes=budget * 1.05)
    network, log = train_regressor(scene, work / "run", settings, model_sha256=sha, show_progress=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("regressor.pt", "training.json", "training.png"):
        (out / name).write_bytes((work / "run" / name).read_bytes())
    last = log.validation[-1] if log.validation else {}
    print(f"trained {log.steps[-1] if log.steps else 0} steps in {log.seconds:.0f} s "
          f"({log.samples_per_second:.0f} samples/s); last validation: {last}", flush=True)


def _median(values) -> float:
    values = [float(v) for v in values if np.isfinite(float(v))]
    return round(statistics.median(values), 3) if values else float("nan")


def _steps_to_reach(curve: np.ndarray, steps: np.ndarray, target: float) -> float:
    """First step whose landmark error is within 1 % of ``target`` (NaN if never)."""
    hit = np.nonzero(curve <= target * 1.01 + 1e-6)[0]
    return float(steps[hit[0]]) if len(hit) else float("nan")


def fit_with_curve(scene, images, landmarks, skin, config, init):
    """Fit and record the mean 68-landmark error (crop px) per item every 5 steps."""
    from flamefit.fitting.optimizer import fit_batch

    steps, curves = [], []

    def hook(state) -> None:
        done = state.step if state.stage == "rigid" else config.rigid_steps + state.step
        if done % 5 == 0:
            with torch.no_grad():
                predicted = scene.landmarks_px(state.params, config.resolution)
                curves.append((predicted - landmarks).norm(dim=-1).mean(dim=1).cpu().numpy())
            steps.append(done)

    device = images.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    outcome = fit_batch(scene, images, landmarks, skin, config, init=init, progress=hook)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return outcome, np.array(steps), np.stack(curves, axis=1), seconds


def evaluate(args) -> None:
    from flamefit.fitting.optimizer import FitConfig
    from flamefit.fitting.parameters import FitParameters
    from flamefit.fitting.synthetic import face_vertex_error_mm
    from flamefit.regressor.synthetic_faces import SyntheticFaceSampler, background_bank
    from flamefit.fitting.image_regressor import load_image_regressor
    from flamefit.regressor.training import _step_generator, prediction_errors

    device = torch.device(args.device)
    files, scene = open_scene(device)
    network = load_image_regressor(args.model, device)
    resolution = network.spec.resolution
    sampler = SyntheticFaceSampler(scene, resolution, background_bank(device, seed=1))
    chunks = [sampler.sample(min(100, args.renders - start), _step_generator(7, start, "benchmark"))
              for start in range(0, args.renders, 100)]
    images = torch.cat([c.images for c in chunks])
    truth = FitParameters(**{k: torch.cat([getattr(c.truth, k) for c in chunks])
                             for k in chunks[0].truth.tensors()})
    yaw = torch.cat([c.yaw_deg for c in chunks]).cpu().numpy()
    occluded = torch.cat([c.occluded for c in chunks]).cpu().numpy()
    landmarks = torch.cat([c.landmarks_px for c in chunks])
    # the regressor alone
    predictions = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            predictions.append(network.predict(images[start:start + 256]))
    predicted = FitParameters(**{k: torch.cat([getattr(p, k) for p in predictions]) for k in predictions[0].tensors()})
    errors = {k: v.cpu().numpy() for k, v in prediction_errors(scene, predicted, truth, resolution).items()}
    steep = np.abs(yaw) >= 45
    regressor = {"renders": len(images), "share_yaw_45_90": round(float(steep.mean()), 3),
                 "share_occluded": round(float(occluded.mean()), 3)}
    for name, values in errors.items():
        regressor[f"{name}_median"] = _median(values)
        regressor[f"{name}_median_yaw_45_90"] = _median(values[steep])
        regressor[f"{name}_median_occluded"] = _median(values[occluded])
    regressor["per_yaw_bin_rotation_deg"] = {
        f"{lo}..{lo + 30}": _median(errors["rotation_deg"][(np.abs(yaw) >= lo) & (np.abs(yaw) < lo + 30)])
        for lo in (0, 30, 60)}
    print("regressor alone:", json.dumps(regressor), flush=True)
    # speed: the network alone at --batch
    speed = throughput(network, resolution, args.batch, device)
    print("throughput:", speed, flush=True)
    result = {"machine": machine(args.device), "model": files.describe(),
              "regressor_file": str(args.model), "regressor": regressor, "throughput": speed}
    if args.fits:
        result["fits"] = compare_fits(scene, images[:args.fits], landmarks[:args.fits],
                                      FitParameters(**{k: v[:args.fits] for k, v in truth.tensors().items()}),
                                      FitParameters(**{k: v[:args.fits] for k, v in predicted.tensors().items()}),
                                      args, resolution, face_vertex_error_mm, FitConfig, yaw[:args.fits])
        print("fits:", json.dumps(result["fits"]), flush=True)
    path = Path(args.json) if args.json else RESULTS / f"regressor_{device.type}_{result['machine']['date'][:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("saved", path)


def throughput(network, resolution: int, batch: int, device) -> dict:
    from flamefit.regressor.training import _autocast

    images = torch.rand(batch, 3, resolution, resolution, device=device)
    with torch.no_grad():
        figures = {}
        for precision in (("bf16", "fp32") if device.type == "cuda" else ("fp32",)):
            for _ in range(3):
                with _autocast(device, precision):
                    network(images)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started, repeats = time.perf_counter(), 20 if device.type == "cuda" else 2
            for _ in range(repeats):
                with _autocast(device, precision):
                    network.decode(network(images))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - started) / repeats
            figures[precision] = {"batch": batch, "photos_per_second": round(batch / seconds, 1),
                                  "ms_per_photo": round(1000 * seconds / batch, 3)}
    return figures


def compare_fits(scene, images, landmarks, truth, predicted, args, resolution, vertex_error, FitConfig, yaw) -> dict:
    rigid, full = (int(x) for x in args.iters.split(","))
    with torch.no_grad():
        skin = scene.render(truth, resolution).face_mask
    true_vertices = scene.flame(shape=truth.shape, expression=truth.expression, pose=truth.pose).vertices
    runs, schedules = {}, {"zero": (rigid, full)}
    starts = [("zero", None, (rigid, full))] + [
        (f"regressor_{text}", predicted, tuple(int(x) for x in text.split(",")))
        for text in args.regressor_iters.split(";") if text]
    from flamefit.fitting.options import RESULT_INIT, ZERO_INIT, resolve_schedule

    for name, init, (r, f) in starts:
        # each start runs with its learning rate as `flamefit fit` gives it (--init OUT of regress:
        # the refinement schedule's), unless --reference-lr
        start = ZERO_INIT if init is None or args.reference_lr else RESULT_INIT
        schedule = resolve_schedule(r, f, start)
        config = FitConfig(resolution=resolution, convergence_tol=0.0, **schedule.config_fields())
        runs[name] = fit_with_curve(scene, images, landmarks, skin, config, init)
        schedules[name] = (r, f)
    zero_final = runs["zero"][2][:, -1]
    extent = (landmarks.amax(dim=1) - landmarks.amin(dim=1)).cpu().numpy()
    box = np.sqrt(extent.prod(axis=1))  # the landmarks' box size sqrt(w h), crop px
    result = {"renders": len(images), "iters": [rigid, full],
              "targets": "the 68 true landmarks; photometric mask: the true face region",
              "failure": "final 68-landmark error over 5 % of the landmarks' box size sqrt(w h)"}
    for name, (outcome, steps, curves, seconds) in runs.items():
        r, f = schedules[name]
        reach = np.array([_steps_to_reach(curves[i], steps, zero_final[i]) for i in range(len(images))])
        final = curves[:, -1]
        failures = final > 0.05 * box
        vertices = vertex_error(scene, outcome.params, true_vertices, align=True).cpu().numpy()
        result[name] = {
            "final_landmark_error_px_median": _median(final),
            "face_vertex_error_mm_median": _median(vertices),
            "failures": int(failures.sum()),
            "failures_yaw_45_90": int(failures[np.abs(yaw) >= 45].sum()),
            "steps_to_zero_final_median": _median(reach),
            "steps_to_zero_final_never": int(np.isnan(reach).sum()),
            "seconds_batch": round(seconds, 2),
            "seconds_to_zero_final_median": _median(reach / (r + f) * seconds / len(images)),
            "iters": [r, f],
        }
    zero_steps = result["zero"]["steps_to_zero_final_median"]
    for name in runs:
        if name != "zero" and zero_steps and np.isfinite(zero_steps):
            result[name]["steps_fraction_of_zero"] = round(result[name]["steps_to_zero_final_median"] / zero_steps, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    t = sub.add_parser("train")
    t.add_argument("--device", default="cuda")
    t.add_argument("--budget-minutes", type=float, default=4.0)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--validation-size", type=int, default=256)
    t.add_argument("--out", required=True)
    t.add_argument("--work", default=None, help="where the probe and the run keep their checkpoints "
                                                "(default: a new temporary folder)")
    e = sub.add_parser("evaluate")
    e.add_argument("--model", required=True)
    e.add_argument("--device", default="cuda")
    e.add_argument("--renders", type=int, default=500)
    e.add_argument("--fits", type=int, default=100)
    e.add_argument("--iters", default="200,800", help="the zero start's schedule")
    e.add_argument("--reference-lr", action="store_true",
                   help="fit from the regressor at the reference's constant learning rate instead of "
                        "the refinement schedule's (flamefit fit --init OUT of regress)")
    e.add_argument("--regressor-iters", default="0,250;0,800",
                   help="schedules of the fits from the regressor (';'-separated RIGID,FULL)")
    e.add_argument("--batch", type=int, default=256)
    e.add_argument("--json", default=None)
    args = parser.parse_args()
    train(args) if args.part == "train" else evaluate(args)


if __name__ == "__main__":
    main()
