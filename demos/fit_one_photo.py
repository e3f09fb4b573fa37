"""Fit one photo through the Python API and print where the results are.

    python demos/fit_one_photo.py                  # scikit-image's astronaut photo
    python demos/fit_one_photo.py me.jpg --out results
    python demos/fit_one_photo.py --quick          # a few steps: checks the set-up, not a good fit

Uses FLAME when data/flame/ holds it, the open ICT-FaceKit model otherwise. Each photo gets a folder
OUT/<name>/ with mesh.obj (+ .mtl, .png albedo), params.npz, camera.npz, overlay.png, sheet.png
and report.json (see README.md).
"""
import argparse
from pathlib import Path

import imageio.v3 as iio
from skimage import data

from flamefit.fitting.batch import FitOptions, fit_images

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("photo", nargs="?", help="the photo to fit (default: scikit-image's astronaut)")
parser.add_argument("--out", type=Path, default=Path("out/demos/fit_one_photo"), help="results folder")
parser.add_argument("--iters", default="200,800", help="optimiser steps: rigid,full (default %(default)s)")
parser.add_argument("--quick", action="store_true", help="--iters 10,5 at 128 px: seconds, for a smoke test")
args = parser.parse_args()

photo = args.photo
if photo is None:  # Eileen Collins, public domain, ships with scikit-image
    photo = args.out / "inputs" / "astronaut.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(photo, data.astronaut())

rigid, full = (10, 5) if args.quick else (int(n) for n in args.iters.split(","))
options = FitOptions(rigid_steps=rigid, full_steps=full, resolution=128 if args.quick else 224,
                     overwrite=True)
summary = fit_images([photo], args.out, options)
print(summary.line())
for name in summary.fitted:
    print(f"mesh: {args.out / name / 'mesh.obj'}   overview: {args.out / name / 'sheet.png'}")
for name, reason in summary.failed.items():
    print(f"failed: {name}: {reason}")
raise SystemExit(0 if summary.fitted and not summary.failed else 1)
