"""The texture-space subcommands of ``flamefit``: ``build-texture-space`` and
``sample-texture-space``.

:func:`register` adds both to the ``flamefit`` parser (:mod:`flamefit.cli`); each is a thin
wrapper over :func:`flamefit.texture_space.build.build_texture_space` and
:func:`flamefit.texture_space.sample.sample_texture_space`. Defaults come from
:class:`flamefit.texture_space.options.BuildOptions`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flamefit.texture_space.choices import BOOTSTRAPS, COMPLETION_METHODS
from flamefit.texture_space.options import BuildOptions


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The :class:`BuildOptions` of parsed ``build-texture-space`` arguments."""
    return BuildOptions(
        components=args.components, rounds=args.rounds, resolution=args.resolution,
        batch_size=args.batch_size, device=args.device, iters=args.iters,
        fit_resolution=args.fit_resolution, unwrap_crop=args.unwrap_crop, landmarks=args.landmarks,
        mask=args.mask, init_space=args.init_space, bootstrap=args.bootstrap,
        flame_dir=args.flame_dir, open_model=args.open_model, camera=args.camera, seed=args.seed,
        min_skin=args.min_skin, holdout=args.holdout, completion=args.completion,
        detector=args.detector, backend=args.backend, keep_stacks=args.keep_stacks, from_fits=args.from_fits,
    )


def print_build_summary(summary, out: Path) -> int:
    """Print a build's skipped photos, its ``summary.txt`` and its line; the exit status."""
    for name, reason in sorted(summary.skipped.items()):
        print(f"skipped: {name}: {reason}")
    print((Path(out) / "summary.txt").read_text())
    print(summary.line())
    return 0


def cmd_build_texture_space(args: argparse.Namespace) -> int:
    from flamefit.texture_space.build import build_texture_space

    return print_build_summary(build_texture_space(args.inputs, args.out, build_options(args)), args.out)


def cmd_sample_texture_space(args: argparse.Namespace) -> int:
    from flamefit.texture_space.sample import sample_texture_space

    written = sample_texture_space(
        args.space, args.out, n_components=args.components, sigma=args.sigma,
        n_samples=args.samples, render_resolution=args.render_resolution,
        flame_dir=args.flame_dir, open_model=args.open_model, seed=args.seed,
    )
    print(f"wrote {len(written)} images to {args.out}")
    return 0


def register(subparsers, shared) -> None:
    """Add ``build-texture-space`` and ``sample-texture-space`` to ``flamefit``'s subparsers
    (``shared``: the option groups of :class:`flamefit.cli.SharedOptions`)."""
    d = BuildOptions()
    build = subparsers.add_parser(
        "build-texture-space", help="learn an albedo space from many photos",
        description="Fit every photo with the current albedo space plus a per-texel offset, unwrap "
                    "each into UV space (de-lit, with per-texel visibility), complete unseen texels, "
                    "take a PCA and save the space (FLAME_texture.npz layout); repeat for --rounds, "
                    "refitting with the new space. Round 0 starts from a constant skin albedo (or "
                    "--init-space), or from existing `flamefit fit` results (--from-fits). Resumable: rerun the same command after a crash. Writes "
                    "OUT/texture_space.npz, rounds.json, summary.txt and per-round folders.",
    )
    build.add_argument("inputs", nargs="*",
                       help="image files, folders of images, or glob patterns (none with --from-fits)")
    build.add_argument("--out", type=Path, required=True, help="build folder (state, per-round results, final space)")
    build.add_argument("--components", type=shared.positive_int, default=d.components,
                       help=f"components K of the space (default {d.components})")
    build.add_argument("--rounds", type=shared.positive_int, default=d.rounds,
                       help=f"fit-unwrap-PCA rounds (default {d.rounds})")
    build.add_argument("--resolution", type=shared.resolution(16, 4096), default=d.resolution,
                       help=f"UV resolution of the maps and of the saved space, e.g. 256 or 512 "
                            f"(default {d.resolution})")
    build.add_argument("--batch-size", type=shared.positive_int, default=d.batch_size,
                       help=f"photos fitted together (16-256 on a GPU; default {d.batch_size})")
    build.add_argument("--iters", type=shared.step_counts, default=d.iters, metavar="RIGID,FULL",
                       help="optimiser steps of the rigid and full stages per fit (default "
                            f"{d.iters[0]},{d.iters[1]})")
    build.add_argument("--fit-resolution", type=shared.resolution(32, 2048), default=d.fit_resolution,
                       help=f"crop size the fit runs at (default {d.fit_resolution})")
    build.add_argument("--unwrap-crop", type=shared.resolution(32, 4096), default=d.unwrap_crop,
                       help="crop size photos are unwrapped from (default: max of --resolution and --fit-resolution)")
    build.add_argument("--landmarks", type=Path, default=None,
                       help="folder of <stem>.npy (or .txt/.pts) 68x2 landmarks in photo pixels, instead of detection")
    build.add_argument("--mask", type=Path, default=None,
                       help="folder of <stem>.png masks (white = use) the size of each photo")
    build.add_argument("--init-space", type=Path, default=None,
                       help="texture space (FLAME_texture.npz layout) to fit round 0 with")
    build.add_argument("--bootstrap", choices=BOOTSTRAPS, default=d.bootstrap,
                       help="round 0 without --init-space: a constant skin albedo (default) or the model "
                            "folder's own albedo space")
    shared.camera(build, d.camera)
    build.add_argument("--min-skin", type=float, default=d.min_skin,
                       help="skip photos showing less than this fraction of the face region's "
                            f"texels (default {d.min_skin})")
    build.add_argument("--holdout", type=float, default=d.holdout,
                       help="fraction of usable photos held out to measure generalisation (at "
                            f"least 2; default {d.holdout})")
    build.add_argument("--completion", choices=COMPLETION_METHODS, default=d.completion,
                       help="how unseen texels are filled before the PCA (default combined: mirror, "
                            "low-rank imputation, inpainting)")
    shared.detector(build, d.detector)
    build.add_argument("--from-fits", type=Path, default=None, metavar="DIR",
                       help="take round 0's fits from this `flamefit fit` output folder instead of fitting: "
                            "each DIR/<name>/ that is done is unwrapped with its parameters from the photo its "
                            "report names (same crop); failed fits are skipped with their reason; later "
                            "rounds refit as usual")
    build.add_argument("--keep-stacks", action="store_true",
                       help="keep each round's memory-mapped map stacks (large) after its space is saved")
    build.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    shared.device(build, d.device)
    shared.model(build)
    build.set_defaults(func=cmd_build_texture_space)

    sample = subparsers.add_parser(
        "sample-texture-space", help="images of an albedo space's mean, components and samples",
        description="Write the mean and mean +/- SIGMA standard deviations of the first components "
                    "as UV images and as renders on the head (fixed light), and a sheet of random samples.",
    )
    sample.add_argument("space", type=Path, help="texture space file (FLAME_texture.npz layout)")
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--components", type=int, default=5, help="leading components shown (default 5)")
    sample.add_argument("--sigma", type=float, default=3.0, help="standard deviations along each component (default 3)")
    sample.add_argument("--samples", type=int, default=12, help="random samples on samples.png (default 12)")
    sample.add_argument("--render-resolution", type=int, default=256, help="side of each render (default 256)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the random samples (default 0)")
    shared.model(sample)
    sample.set_defaults(func=cmd_sample_texture_space)
