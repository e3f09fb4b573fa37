"""Build a small albedo (texture) space from a folder of photos, then sample it.

    python demos/build_texture_space.py photos/ --components 20 --rounds 2
    python demos/build_texture_space.py --quick

Without a folder it uses a toy set: six copies of the astronaut photo, mirrored, shifted and
recoloured. That only shows the pipeline running (one face cannot make a meaningful space);
give it a few hundred photos of different people for a real one. The space is written in
FLAME_texture.npz's layout; `flamefit fit --texture-space OUT/texture_space.npz` fits with it.
"""
import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage import data

from flamefit.texture_space import BuildOptions, build_texture_space, sample_texture_space

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", nargs="?", help="folder of photos (default: a toy set of six)")
parser.add_argument("--out", type=Path, default=Path("out/demos/texture_space"), help="build folder")
parser.add_argument("--components", type=int, default=3, help="components of the space")
parser.add_argument("--rounds", type=int, default=1, help="fit-unwrap-PCA rounds")
parser.add_argument("--iters", default="100,300", help="optimiser steps per fit: rigid,full")
parser.add_argument("--quick", action="store_true", help="--iters 10,5, 64 px maps: a smoke test")
args = parser.parse_args()

folder = args.folder
if folder is None:
    folder, photo = args.out / "toy_photos", data.astronaut()
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in {"original": photo, "mirrored": photo[:, ::-1], "shifted": np.roll(photo, 40, axis=1),
                        "warmer": photo * [1.0, 0.9, 0.8], "cooler": photo * [0.8, 0.9, 1.0],
                        "darker": photo * 0.7}.items():
        iio.imwrite(folder / f"{name}.png", np.asarray(image).astype(np.uint8))

iters = (10, 5) if args.quick else tuple(int(n) for n in args.iters.split(","))
options = BuildOptions(components=args.components, rounds=args.rounds, iters=iters,
                       resolution=64 if args.quick else 256, fit_resolution=128 if args.quick else 224)
summary = build_texture_space([folder], args.out, options)
print(summary.line())
written = sample_texture_space(summary.space_path, args.out / "look", n_components=2, n_samples=4)
print(f"space: {summary.space_path}")
print("look at:", *(p for p in written if p.name in ("components.png", "samples.png")))
