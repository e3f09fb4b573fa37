"""Dense landmarks: the embedding's consistency, detection cost, and landmark accuracy of the
detectors and of the fits made from them.

Parts (all by default; ``--parts`` picks some):

* ``embedding``: the shipped open model's MediaPipe embedding, recalibrated here (timed; checked
  array for array against the shipped file), its median reprojection spread over the
  calibration renders (in-sample; px of a 224² head render, and of the fit's 224² crop) and over
  held-out renders (other identities, expressions, lights and backgrounds: ``calibration_views``
  with seed ``HELD_OUT_SEED``, same yaws), the figure quoted against the issue's 1 px bar;
* ``detect``: detection + landmarks per photo of ``../shared/photos`` with dlib and mediapipe
  (median ms, after one warm-up photo);
* ``photos``: ``flamefit fit`` of the shared photos with each detector: detected or not, and the
  median fitted-vs-detected error on the 68 points (% IOD, the report's measure);
* ``synthetic``: renders of the open model with known landmarks, yaw -90..90 degrees, a quarter
  with an occluder over the mouth, on 512² frames; each detector detects them, the fits run
  with ``--iters`` (reduced by default), and ``flamefit evaluate`` gives the NME of the
  detections and of the fits (truth = the model's own 68 landmarks), by the outer-corner IOD
  and by the box size (near profiles the eye corners overlap and the IOD goes to 0: read the
  box-normalised figures there).

Figures are printed and saved to ``benchmarks/results/landmarks_<date>.json``. Run it alone on
the machine: the CPU timings mean nothing while other jobs run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "photos"
DETECTORS = ("dlib", "mediapipe")


def photos() -> list[Path]:
    return sorted(p for p in PHOTOS.resolve().iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def bench_embedding(held_out_identities: int) -> dict:
    from flamefit.fitting import dense_embedding as de
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    files = select_model(open_model=True)
    scene = HeadScene.from_model_files(files)
    started = time.perf_counter()
    embedding = de.calibrate(scene, de.model_sha256(files.model))
    seconds = time.perf_counter() - started
    shipped = de.DenseEmbedding.load(de.SHIPPED_EMBEDDING)
    differing = ["missing"] if shipped is None else [
        name for name, value in embedding.__dict__.items()
        if not np.array_equal(np.asarray(value), np.asarray(getattr(shipped, name)),
                              equal_nan=name == "spread_px")]
    views = de.calibration_views(scene, held_out_identities, seed=de.HELD_OUT_SEED)
    held_out = de.spread_on_views(embedding, views, de.detect_views(views),
                                  scene.flame.faces.numpy().astype(np.int64))
    in_sample = embedding.spread_px[embedding.point_ids]
    regions = {name: {"kept": int((embedding.regions == i).sum()),
                      "median_spread_px_in_sample": _median(in_sample[embedding.regions == i]),
                      "median_spread_px_held_out": _median(held_out[embedding.regions == i])}
               for i, name in enumerate(de.REGIONS)}
    return {"calibration_seconds": round(seconds, 1), **embedding.summary(),
            "held_out_views": len(views), "held_out_seed": de.HELD_OUT_SEED,
            "median_spread_px_224_render_held_out": _median(held_out),
            "median_spread_px_224_fit_crop_held_out": round(_median(held_out) * embedding.fit_crop_factor, 3),
            "per_region_spread": regions,
            "max_spread_kept_px_224_render": de.MAX_SPREAD_PX,
            "region_minimum": {"points": de.MIN_REGION_POINTS, "max_spread_px": de.REGION_MAX_SPREAD_PX},
            "recalibration_matches_shipped": not differing, "differing_arrays": differing}


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(np.median(values)), 3) if len(values) else None


def bench_detect() -> dict:
    from flamefit.fitting.detect import detect_face
    from flamefit.fitting.image_io import load_image

    images = [load_image(p).rgb for p in photos()]
    out = {}
    for detector in DETECTORS:
        detect_face(images[0], detector=detector)  # warm-up: loads the networks
        times, found = [], 0
        for rgb in images:
            started = time.perf_counter()
            try:
                detect_face(rgb, detector=detector)
                found += 1
            except Exception:  # noqa: BLE001 - counted as not detected
                pass
            times.append(time.perf_counter() - started)
        out[detector] = {"median_ms": round(1000 * statistics.median(times), 1),
                         "max_ms": round(1000 * max(times), 1), "detected": found, "photos": len(images),
                         "image_sizes": sorted({f"{rgb.shape[1]}x{rgb.shape[0]}" for rgb in images})}
    return out


def _fit(inputs: list[Path], out: Path, detector: str, iters: tuple[int, int]) -> dict:
    from flamefit.fitting.batch import fit_images
    from flamefit.fitting.options import FitOptions
    from flamefit.fitting.results import find_results, read_report

    started = time.perf_counter()
    fit_images(inputs, out, FitOptions(device="cpu", detector=detector, rigid_steps=iters[0],
                                       full_steps=iters[1], open_model=True), show_progress=False)
    seconds = time.perf_counter() - started
    reports = [read_report(folder) for folder in find_results(out)]
    done = [r for r in reports if r and r.get("status") == "done"]
    errors = [r["landmark_error_percent_iod"] for r in done]
    return {"photos": len(inputs), "fitted": len(done),
            "failed": {r["id"]: r.get("error", r.get("fit_status")) for r in reports if r and r not in done},
            "median_fitted_vs_detected_percent_iod": round(statistics.median(errors), 3) if errors else None,
            "per_photo_percent_iod": {r["id"]: round(r["landmark_error_percent_iod"], 2) for r in done},
            "dense_median_error_percent_iod": {r["id"]: r["dense_landmarks"]["median_error_percent_iod"]
                                               for r in done if "dense_landmarks" in r},
            "seconds_per_photo": round(seconds / max(len(inputs), 1), 1)}


def bench_photos(work: Path, iters: tuple[int, int], detectors: tuple[str, ...] = DETECTORS) -> dict:
    return {detector: _fit(photos(), work / f"photos_{detector}", detector, iters) for detector in detectors}


def synthetic_set(folder: Path, count: int, seed: int = 0) -> list[float]:
    """Write ``count`` renders (``render_NN.png``) and their truth (``truth/render_NN.npy``,
    68 x 2 pixel indices); returns the yaws in degrees."""
    from flamefit.fitting.scene import HeadScene
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame import landmark_sets as ibug
    from flamefit.flame.pose_layout import GLOBAL
    from flamefit.flame.selection import select_model
    from flamefit.utils import write_image

    scene = HeadScene.from_model_files(select_model(open_model=True))
    generator = torch.Generator().manual_seed(seed)
    yaws = np.linspace(-90, 90, count)
    truth = random_parameters(scene, count, generator, spread=0.8)
    truth.pose[:, GLOBAL.start + 1] = torch.deg2rad(torch.tensor(yaws, dtype=torch.float32))
    truth.camera[:, 0] = truth.camera[:, 0] * 0.55  # the head in the middle of a 512² frame
    size = 512
    with torch.no_grad():
        rendered = scene.render(truth, size)
    backdrop = torch.linspace(0.35, 0.65, size)[None, None, :, None].expand(count, 3, size, size)
    images = rendered.image + (1 - rendered.alpha) * backdrop
    occluded = torch.zeros(count, dtype=torch.bool)
    occluded[1::4] = True  # a quarter of them
    for index in torch.nonzero(occluded).flatten().tolist():  # a block over the mouth
        lips = rendered.landmarks_px[index, ibug.MOUTH]
        x0, y0 = (lips.min(dim=0).values - 8).long().tolist()
        x1, y1 = (lips.max(dim=0).values + 20).long().tolist()
        images[index, :, y0:y1, x0:x1] = torch.tensor([0.8, 0.6, 0.5])[:, None, None]
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rgb = (images[index].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        write_image(folder / f"render_{index:02d}.png", rgb)
        np.save(folder / "truth" / f"render_{index:02d}.npy", rendered.landmarks_px[index].numpy() - 0.5)
    return [float(y) for y in yaws]


def _report(folder: Path) -> dict:
    path = folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def bench_synthetic(work: Path, count: int, iters: tuple[int, int]) -> dict:
    from flamefit.fitting.evaluation import evaluate_results

    folder = work / "synthetic"
    yaws = synthetic_set(folder, count)
    renders = sorted(folder.glob("render_*.png"))
    out = {"renders": count, "yaw_deg": [round(y, 1) for y in yaws], "occluded_every": 4, "iters": list(iters)}
    for detector in DETECTORS:
        fits = _fit(renders, work / f"synthetic_{detector}", detector, iters)
        evaluation = evaluate_results(work / f"synthetic_{detector}", folder / "truth",
                                      work / f"evaluation_{detector}")
        summary = evaluation.summary
        per_yaw = {}
        for record in evaluation.records:
            yaw = yaws[int(record.id.split("_")[1])]
            per_yaw[f"{yaw:+.0f}"] = record.status if record.status != "evaluated" else {
                **{key: round(record.nme[key], 2) for key in ("iod_detected", "iod_fitted", "box_detected", "box_fitted")},
                "source": _report(work / f"synthetic_{detector}" / record.id).get("landmarks_source")}
        out[detector] = {
            "fitted": fits["fitted"], "failed": fits["failed"],
            "nme_iod_detected_median": summary["detected"]["nme_iod"].get("median"),
            "nme_iod_fitted_median": summary["fitted"]["nme_iod"].get("median"),
            "nme_box_detected_median": summary["detected"]["nme_box"].get("median"),
            "nme_box_fitted_median": summary["fitted"]["nme_box"].get("median"),
            "failure_rate_8_counting_failed": summary["fitted"]["failure_rate_iod_counting_failed_fits"].get("8"),
            "per_yaw": per_yaw, "ced": str(evaluation.out_dir / "ced.png")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="embedding,detect,photos,synthetic")
    parser.add_argument("--renders", type=int, default=19, help="synthetic renders (yaw -90..90)")
    parser.add_argument("--iters", default="100,300", help="fit steps for the synthetic renders")
    parser.add_argument("--photo-iters", default="200,800", help="fit steps for the shared photos")
    parser.add_argument("--held-out-identities", type=int, default=16,
                        help="identities of the held-out renders of the embedding part (7 yaws each)")
    parser.add_argument("--photo-detectors", default=",".join(DETECTORS), help="detectors of the photos part")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--work", type=Path, default=None, help="keep the fits here")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_landmarks_"))
    iters = tuple(int(v) for v in args.iters.split(","))
    photo_iters = tuple(int(v) for v in args.photo_iters.split(","))
    result = {"machine": machine("cpu"), "work": str(work)}
    for part in parts:
        started = time.perf_counter()
        if part == "embedding":
            result[part] = bench_embedding(args.held_out_identities)
        elif part == "detect":
            result[part] = bench_detect()
        elif part == "photos":
            result[part] = bench_photos(work, photo_iters, tuple(args.photo_detectors.split(",")))
        elif part == "synthetic":
            result[part] = bench_synthetic(work, args.renders, iters)
        else:
            parser.error(f"unknown part {part}")
        print(f"== {part} ({time.perf_counter() - started:.0f} s)")
        print(json.dumps(result[part], indent=1))
    name = f"landmarks_{datetime.date.today().isoformat()}{('_' + args.tag) if args.tag else ''}"
    print("saved", save(name, result))


if __name__ == "__main__":
    main()
