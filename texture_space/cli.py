"""The ``build-texture-space`` and ``sample-texture-space`` subcommands of ``flamefit``.

:func:`add_subcommands` adds both to the ``flamefit`` parser's subparsers; each is a thin
wrapper over :func:`texture_space.build.build_texture_space` and
:func:`texture_space.sample.sample_texture_space`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fitting.cli import add_model_options


def _iters(text: str) -> tuple[int, int]:
    try:
        values = tuple(int(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected RIGID,FULL step counts like 100,300; got {text!r}")
    return values


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cmd_build_texture_space(args: argparse.Namespace) -> int:
    from texture_space.build import BuildOptions, build_texture_space

    options = BuildOptions(
        components=args.components, rounds=args.rounds, resolution=args.resolution,
        batch_size=args.batch_size, device=args.device, iters=args.iters,
        fit_resolution=args.fit_resolution, unwrap_crop=args.unwrap_crop, landmarks=args.landmarks,
        mask=args.mask, init_space=args.init_space, bootstrap=args.bootstrap,
        flame_dir=args.flame_dir, demo_head=args.demo_head, camera=args.camera, seed=args.seed,
        min_skin=args.min_skin, holdout=args.holdout, completion=args.completion,
        detector=args.detector, backend=args.backend, keep_stacks=args.keep_stacks, from_fits=args.from_fits,
    )
    summary = build_texture_space(args.inputs, args.out, options)
    for name, reason in sorted(summary.skipped.items()):
        print(f"skipped: {name}: {reason}")
    print((args.out / "summary.txt").read_text())
    print(summary.line())
    return 0


def cmd_sample_texture_space(args: argparse.Namespace) -> int:
    from texture_space.sample import sample_texture_space

    written = sample_texture_space(
        args.space, args.out, n_components=args.components, sigma=args.sigma,
        n_samples=args.samples, render_resolution=args.render_resolution,
        flame_dir=args.flame_dir, demo_head=args.demo_head, seed=args.seed,
    )
    print(f"wrote {len(written)} images to {args.out}")
    return 0


def add_subcommands(subparsers) -> None:
    """Add ``build-texture-space`` and ``sample-texture-space`` to ``flamefit``'s subparsers."""
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
    build.add_argument("--components", type=int, default=50, help="components K of the space (default 50)")
    build.add_argument("--rounds", type=int, default=2, help="fit-unwrap-PCA rounds (default 2)")
    build.add_argument("--resolution", type=int, default=256,
                       help="UV resolution of the maps and of the saved space, e.g. 256 or 512 (default 256)")
    build.add_argument("--batch-size", type=int, default=8, help="photos fitted together (16-256 on a GPU; default 8)")
    build.add_argument("--device", default="cuda" if _cuda() else "cpu",
                       help="torch device, e.g. cpu, cuda (default: cuda when available)")
    build.add_argument("--iters", type=_iters, default=(100, 300), metavar="RIGID,FULL",
                       help="optimiser steps of the rigid and full stages per fit (default 100,300)")
    build.add_argument("--fit-resolution", type=int, default=224, help="crop size the fit runs at (default 224)")
    build.add_argument("--unwrap-crop", type=int, default=None,
                       help="crop size photos are unwrapped from (default: max of --resolution and --fit-resolution)")
    build.add_argument("--landmarks", type=Path, default=None,
                       help="folder of <stem>.npy (or .txt/.pts) 68x2 landmarks in photo pixels, instead of detection")
    build.add_argument("--mask", type=Path, default=None,
                       help="folder of <stem>.png masks (white = use) the size of each photo")
    build.add_argument("--init-space", type=Path, default=None,
                       help="texture space (FLAME_texture.npz layout) to fit round 0 with")
    build.add_argument("--bootstrap", choices=("constant", "model"), default="constant",
                       help="round 0 without --init-space: a constant skin albedo (default) or the model "
                            "folder's own albedo space")
    build.add_argument("--camera", choices=("orthographic", "perspective"), default="orthographic",
                       help="camera model of the fits (default orthographic)")
    build.add_argument("--min-skin", type=float, default=0.1,
                       help="skip photos showing less than this fraction of the face region's texels (default 0.1)")
    build.add_argument("--holdout", type=float, default=0.1,
                       help="fraction of usable photos held out to measure generalisation (at least 2; default 0.1)")
    build.add_argument("--completion", choices=("mean", "symmetry", "pca", "inpaint", "combined"), default="combined",
                       help="how unseen texels are filled before the PCA (default combined: mirror, "
                            "low-rank imputation, inpainting)")
    build.add_argument("--detector", choices=("auto", "dlib", "fan"), default="auto", help="face/landmark detector")
    build.add_argument("--backend", choices=("auto", "torch", "nvdiffrast"), default="auto",
                       help="rasteriser: auto = nvdiffrast on CUDA when installed, else torch")
    build.add_argument("--from-fits", type=Path, default=None, metavar="DIR",
                       help="take round 0's fits from this `flamefit fit` output folder instead of fitting: "
                            "each DIR/<name>/ that is done is unwrapped with its parameters from the photo its "
                            "report names (same crop); failed fits are skipped with their reason; later "
                            "rounds refit as usual")
    build.add_argument("--keep-stacks", action="store_true",
                       help="keep each round's memory-mapped map stacks (large) after its space is saved")
    build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_model_options(build)
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
    add_model_options(sample)
    sample.set_defaults(func=cmd_sample_texture_space)
