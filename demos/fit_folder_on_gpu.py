"""Fit a folder of photos in batches on the GPU (on the CPU when there is none, saying so).

    python demos/fit_folder_on_gpu.py photos/ --out results               # batches of 64 on cuda
    python demos/fit_folder_on_gpu.py photos/ --device cuda:1 --batch-size 256
    python demos/fit_folder_on_gpu.py --quick                             # toy folder, few steps

Without a folder it fits a toy folder: the astronaut photo and its mirror image. A rerun skips
photos already done; bad photos are reported in OUT/<name>/report.json and the batch goes on.
"""
import argparse
import time
from pathlib import Path

import imageio.v3 as iio
from skimage import data

from flamefit.fitting.batch import FitOptions, fit_images
from flamefit.renderer.devices import resolve_device

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", nargs="?", help="folder of photos (default: a toy folder of two)")
parser.add_argument("--out", type=Path, default=Path("out/demos/fit_folder"), help="results folder")
parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
parser.add_argument("--batch-size", type=int, default=64, help="photos fitted together")
parser.add_argument("--iters", default="200,800", help="optimiser steps: rigid,full (default %(default)s)")
parser.add_argument("--quick", action="store_true", help="--iters 10,5 at 128 px: a smoke test")
args = parser.parse_args()

folder = args.folder
if folder is None:
    folder = args.out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    iio.imwrite(folder / "astronaut.png", data.astronaut())
    iio.imwrite(folder / "astronaut_mirrored.png", data.astronaut()[:, ::-1])
device = resolve_device(args.device)
if device.type == "cpu":
    print("no GPU in use: fitting on the CPU (works, but slowly; a small --batch-size suits it)")
rigid, full = (10, 5) if args.quick else (int(n) for n in args.iters.split(","))
options = FitOptions(device=str(device), batch_size=args.batch_size, rigid_steps=rigid, full_steps=full,
                     resolution=128 if args.quick else 224)
started = time.time()
summary = fit_images([folder], args.out, options)
seconds = time.time() - started
print(f"{summary.line()}  ({len(summary.fitted) / seconds:.2f} photos/s on {device})")
raise SystemExit(1 if summary.failed else 0)
