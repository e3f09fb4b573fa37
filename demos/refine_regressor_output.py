"""Refine a regressor's output: start the fit from another tool's output instead of from zero.

    python demos/refine_regressor_output.py                   # astronaut + a hand-made code dict
    python demos/refine_regressor_output.py me.jpg --init me_codedict.npy   # or an EMOCA folder, ...

A regressor (DECA, EMOCA, SMIRK, MICA ...) predicts FLAME codes in one pass; the fit refines them on
the photo's landmarks and pixels. --init reads their files as they save them (the report says which
format it found; README "Starting from a regressor's output"). Here a DECA code dict is made by
hand (np.save of a dict: shape 100, tex 50, exp 50, pose 6 = global + jaw axis-angle, cam 3 =
[s, tx, ty] in DECA's crop, light 9x3 SH); FLAME codes only count when FLAME is the model in use.
"""
import argparse
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage import data

from flamefit.fitting.batch import FitOptions, fit_images

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("photo", nargs="?", help="the photo (default: scikit-image's astronaut)")
parser.add_argument("--init", type=Path, help="a regressor's output (default: a hand-made DECA code dict)")
parser.add_argument("--out", type=Path, default=Path("out/demos/refine"), help="results folder")
parser.add_argument("--iters", default="50,300", help="refinement steps: rigid,full (default %(default)s)")
parser.add_argument("--quick", action="store_true", help="--iters 5,5 at 128 px: a smoke test")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
photo = args.photo or args.out / "astronaut.png"
if args.photo is None:
    iio.imwrite(photo, data.astronaut())
if args.init is None:  # what a regressor might predict: a neutral face, the jaw a little open
    light = np.zeros((1, 9, 3))
    light[0, 0] = 1.13  # white ambient light (1 / the SH band-0 constant: shading 1)
    codes = {"shape": np.zeros((1, 100)), "tex": np.zeros((1, 50)), "exp": np.zeros((1, 50)), "light": light,
             "pose": np.array([[0, 0, 0, 0.1, 0, 0]]), "cam": np.array([[8.0, 0, 0]])}
    args.init = args.out / "codedict.npy"
    np.save(args.init, {k: v.astype(np.float32) for k, v in codes.items()}, allow_pickle=True)
    print(f"wrote the hand-made code dict {args.init} (jaw opening +0.100 rad)")

rigid, full = (5, 5) if args.quick else (int(n) for n in args.iters.split(","))
summary = fit_images([photo], args.out, FitOptions(init=args.init, rigid_steps=rigid, full_steps=full,
                                                   resolution=128 if args.quick else 224, overwrite=True))
print(summary.line())
for name in summary.fitted:
    print("\n".join(json.loads((args.out / name / "report.json").read_text())["notes"]))  # what --init found
    jaw = np.load(args.out / name / "params.npz")["pose"][6]
    print(f"{name}: jaw opening {jaw:+.3f} rad after refinement; mesh {args.out / name / 'mesh.obj'}")
raise SystemExit(0 if summary.fitted and not summary.failed else 1)
