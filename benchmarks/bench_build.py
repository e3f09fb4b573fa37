"""End-to-end ``build-texture-space`` time on N synthetic photos (fit + unwrap + complete + PCA).

    python benchmarks/bench_build.py --n 20                      # a laptop-sized build, CPU
    python benchmarks/bench_build.py --n 1500 --device cuda --batch-size 64

The photos are renders of the model in use (demo head unless data/flame holds FLAME) with
random identity, expression, pose, albedo and light on a flat background, saved as PNG with
their exact landmarks (so no detector time is included). One round is built with the
command's defaults unless told otherwise. Prints the time per stage and saves
``benchmarks/results/build_<device>_N<n>_<date>.json``. The photos and the build folder live
in a temporary folder (``--work DIR`` keeps them; a rerun with the same folder resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

from flamefit.utils import write_image  # noqa: E402
from flamefit.fitting.scene import HeadScene  # noqa: E402
from flamefit.fitting.synthetic import synthetic_batch  # noqa: E402
from flamefit.flame.selection import select_model  # noqa: E402
from flamefit.renderer.pixel_frames import screen_to_index  # noqa: E402
from flamefit.renderer.visualize import to_uint8  # noqa: E402
from flamefit.texture_space.build import BuildOptions, build_texture_space  # noqa: E402


def write_photos(folder: Path, n_photos: int, resolution: int, chunk: int = 64) -> float:
    """Render ``n_photos`` synthetic photos into ``folder/photos`` and their landmarks into
    ``folder/landmarks`` (skipping those already there), on the CPU like every synthetic set;
    returns the seconds it took."""
    started = time.perf_counter()
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    (folder / "landmarks").mkdir(exist_ok=True)
    scene = HeadScene.from_model_files(select_model())
    for start in range(0, n_photos, chunk):
        names = [f"face_{index:05d}" for index in range(start, min(start + chunk, n_photos))]
        if all((folder / "landmarks" / f"{name}.npy").is_file() for name in names):
            continue
        problem = synthetic_batch(scene, len(names), resolution, seed=start, occluder_fraction=0.2, spread=0.8)
        for index, name in enumerate(names):
            write_image(folder / "photos" / f"{name}.png", to_uint8(problem.images[index]))
            # renderer screen coordinates -> the photo's pixel-index coordinates
            np.save(folder / "landmarks" / f"{name}.npy", screen_to_index(problem.landmarks_px[index]).numpy())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="synthetic photos (default 20)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iters", default="100,300", help="rigid,full steps per fit (the command's default)")
    parser.add_argument("--resolution", type=int, default=256, help="UV resolution of the space")
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--photo-size", type=int, default=256, help="side of the synthetic photos")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--work", type=Path, default=None, help="keep photos and build here (resumable)")
    parser.add_argument("--note", default="", help="free text saved with the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rigid, full = (int(x) for x in args.iters.split(","))
    with tempfile.TemporaryDirectory(prefix="bench_build_") as scratch:
        work = args.work or Path(scratch)
        render_seconds = write_photos(work, args.n, args.photo_size)
        print(f"{args.n} synthetic photos ready in {render_seconds:.1f} s", flush=True)
        options = BuildOptions(
            components=args.components, rounds=args.rounds, resolution=args.resolution,
            batch_size=args.batch_size, device=args.device, iters=(rigid, full),
            landmarks=work / "landmarks", seed=0,
        )
        started = time.perf_counter()
        summary = build_texture_space([work / "photos"], work / "build", options, show_progress=True)
        seconds = time.perf_counter() - started
        rounds = json.loads((work / "build" / "rounds.json").read_text())["rounds"]
    per_round = [{"round": r["round"], "n_train": r["n_train"], "n_holdout": r["n_holdout"],
                  "seconds_space": r.get("seconds_space"), "compactness": r["compactness"],
                  "generalisation": {k: v for k, v in r.get("generalisation", {}).items() if k != "rmse_per_photo"},
                  "fit": r["fit"]} for r in rounds]
    payload = {
        "machine": machine(args.device), "model": select_model().describe(), "note": args.note,
        "n_photos": args.n, "used": len(summary.used), "skipped": len(summary.skipped),
        "settings": {"batch_size": args.batch_size, "iters": [rigid, full], "resolution": args.resolution,
                     "components": args.components, "rounds": args.rounds, "photo_size": args.photo_size},
        "seconds_render_photos": round(render_seconds, 2),
        "seconds_build": round(seconds, 2),
        "seconds_per_photo_per_round": round(seconds / max(args.n, 1) / args.rounds, 3),
        "rounds": per_round,
    }
    for r in per_round:
        print(f"round {r['round']}: {r['n_train']} + {r['n_holdout']} photos; complete + PCA + evaluate "
              f"{r['seconds_space']} s; fit error {r['fit']}")
    print(f"build: {seconds:.1f} s for {args.n} photos, {payload['seconds_per_photo_per_round']:.2f} s "
          f"per photo per round ({len(summary.used)} used, {len(summary.skipped)} skipped)")
    date = payload["machine"]["date"][:10]
    print("saved", save(f"build_{device.type}_N{args.n}_{date}", payload))


if __name__ == "__main__":
    main()
