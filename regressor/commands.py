"""The image-regressor subcommands of ``flamefit``: ``train-regressor`` and ``regress``.

:func:`register` adds them to the ``flamefit`` parser (:mod:`flamefit.cli`); they are thin
wrappers over :func:`flamefit.regressor.training.train_regressor` and
:func:`flamefit.regressor.regress.regress_images`. Defaults come from
:class:`flamefit.regressor.options.TrainingSettings` and
:class:`flamefit.regressor.options.RegressOptions` (torch-free).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flamefit.fitting.choices import OUTPUT_SETS
from flamefit.regressor.options import RegressOptions, TrainingSettings

def cmd_train_regressor(args: argparse.Namespace) -> int:
    import torch

    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.regressor.training import train_regressor
    from flamefit.renderer.devices import resolve_device
    from flamefit.renderer.rasterize import resolve_backend
    from flamefit.utils import UsageError

    if args.minutes is not None and args.minutes <= 0:
        raise UsageError(f"--minutes must be more than 0, got {args.minutes:g}")
    if not 0.0 <= args.fits_fraction <= 1.0:
        raise UsageError(f"--fits-fraction must be from 0 to 1, got {args.fits_fraction:g}")
    settings = TrainingSettings(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        resolution=args.resolution, width=args.width, synthetic=args.synthetic,
        from_fits=None if args.from_fits is None else str(Path(args.from_fits).absolute()),
        fits_fraction=args.fits_fraction,
        backgrounds=None if args.backgrounds is None else str(Path(args.backgrounds).absolute()),
        occluder_fraction=args.occluder_fraction, max_yaw=args.max_yaw,
        validation_size=args.validation_size, validation_every=args.validation_every,
        checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device,
        precision=args.precision, minutes=args.minutes)
    device = resolve_device(args.device)
    files = select_model(args.flame_dir, open_model=args.open_model)
    backend = args.backend if args.backend != "auto" else resolve_backend("auto", device)
    scene = HeadScene.from_model_files(files, backend=backend).to(device)
    print(f"training an image regressor for {files.describe()} on {device} into {args.out}")
    try:
        network, log = train_regressor(scene, args.out, settings, model_sha256=model_sha256(files.model))
    except KeyboardInterrupt:
        print(f"flamefit train-regressor: stopped; the checkpoint in {args.out} is saved, run the "
              "same command again to resume.", file=sys.stderr)
        return 130
    last = log.validation[-1] if log.validation else {}
    figures = ", ".join(f"{k} {v}" for k, v in last.items() if k != "step")
    print(f"{log.steps[-1] if log.steps else 0} steps, {log.samples_per_second:g} samples/s; "
          f"validation: {figures or 'none'}; wrote {args.out}")
    return 0


def regress_options(args: argparse.Namespace) -> RegressOptions:
    """The :class:`RegressOptions` of parsed ``flamefit regress`` arguments."""
    return RegressOptions(model=args.model, device=args.device, batch_size=args.batch_size,
                          detector=args.detector, face_index=args.face, landmarks=args.landmarks,
                          flame_dir=args.flame_dir, open_model=args.open_model,
                          overwrite=args.overwrite, on_changed=args.changed_photos, backend=args.backend,
                          outputs=args.outputs)


def cmd_regress(args: argparse.Namespace) -> int:
    from flamefit.fitting.commands import report_summary
    from flamefit.regressor.regress import regress_images

    return report_summary(regress_images(args.inputs, args.out, regress_options(args)))


def register(subparsers, shared) -> None:
    """Add ``train-regressor`` and ``regress`` to ``flamefit``'s subparsers."""
    t = vars(TrainingSettings())
    train = subparsers.add_parser(
        "train-regressor", help="train the image regressor (photo crop -> parameters)",
        description="Train a CNN that maps the fit's face crop to the fit's parameters (shape, "
                    "expression, pose, camera, albedo, SH light) from synthetic renders of the "
                    "model in use (made on the training device: wide poses, albedo samples, SH "
                    "lights, backgrounds cut from photos, occluders, blur/noise/colour changes) "
                    "and/or `flamefit fit` results as pseudo-labels (--from-fits). Writes "
                    "OUT/regressor.pt (for `flamefit regress --model OUT`), checkpoint.pt, "
                    "training.json and training.png. Rerunning the same command resumes.",
        epilog="Exit status: 0 done, 2 bad usage (e.g. OUT holds a run with other settings), "
               "130 stopped (resumable).")
    train.add_argument("--out", type=Path, required=True, help="the run folder")
    source = train.add_argument_group("training data")
    source.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True,
                        help="synthetic renders of the model (default: yes)")
    source.add_argument("--from-fits", type=Path, default=None, metavar="DIR",
                        help="the --out folder of a `flamefit fit` run: its results are pseudo-labels")
    source.add_argument("--fits-fraction", type=float, default=t["fits_fraction"],
                        help=f"with both sources, share of each batch from the fits (default {t['fits_fraction']})")
    source.add_argument("--backgrounds", type=Path, default=None, metavar="DIR",
                        help="photos to cut synthetic backgrounds from (default: scikit-image's sample photos)")
    source.add_argument("--occluder-fraction", type=float, default=t["occluder_fraction"],
                        help=f"share of synthetic faces with an occluder (default {t['occluder_fraction']})")
    source.add_argument("--max-yaw", type=float, default=t["max_yaw"],
                        help=f"widest synthetic yaw in degrees (default {t['max_yaw']:g})")
    run = train.add_argument_group("schedule")
    run.add_argument("--steps", type=shared.positive_int, default=t["steps"],
                     help=f"optimiser steps (default {t['steps']})")
    run.add_argument("--batch-size", type=shared.positive_int, default=t["batch_size"],
                     help=f"crops per step (default {t['batch_size']}; 256 on a GPU)")
    run.add_argument("--learning-rate", type=float, default=t["learning_rate"],
                     help=f"peak AdamW learning rate, cosine decay (default {t['learning_rate']:g})")
    run.add_argument("--resolution", type=shared.resolution(32, 512), default=t["resolution"],
                     help=f"crop size in pixels (default {t['resolution']}, the fit's)")
    run.add_argument("--width", type=shared.positive_int, default=t["width"],
                     help=f"channels of the first stage (default {t['width']}; ResNet-18 has 64)")
    run.add_argument("--validation-size", type=shared.positive_int, default=t["validation_size"],
                     help=f"synthetic validation renders (default {t['validation_size']})")
    run.add_argument("--validation-every", type=shared.positive_int, default=t["validation_every"],
                     help=f"steps between validations (default {t['validation_every']})")
    run.add_argument("--checkpoint-every", type=shared.positive_int, default=t["checkpoint_every"],
                     help=f"steps between checkpoints (default {t['checkpoint_every']})")
    run.add_argument("--minutes", type=float, default=None,
                     help="stop after this many minutes, resumable (default: run all steps)")
    run.add_argument("--seed", type=int, default=t["seed"], help="seed of every draw (default 0)")
    run.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=t["precision"],
                     help="auto: bfloat16 mixed precision on CUDA, float32 on the CPU")
    shared.device(train, "auto")
    shared.model(train)
    train.set_defaults(func=cmd_train_regressor)

    d = RegressOptions()
    regress = subparsers.add_parser(
        "regress", help="feed-forward reconstruction with a trained image regressor",
        description="Detect, crop (as `flamefit fit` does) and reconstruct every photo with one "
                    "network pass: writes the same OUT/<id>/ files as `flamefit fit` (params.npz, "
                    "meshes, camera, landmarks, overlay, sheet, report.json) and OUT/summary.csv. "
                    "`flamefit fit --init OUT` refines them (0 + 250 steps by default). Reruns skip photos already done.",
        epilog="Exit status: 0 all done, 1 some photos failed (see OUT/summary.csv), 2 bad usage.")
    regress.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns")
    regress.add_argument("--model", type=Path, default=None, metavar="DIR",
                         help="the --out folder of `flamefit train-regressor` (or its regressor.pt); "
                              "default: the one that ships with flamefit for the open model")
    regress.add_argument("--out", type=Path, required=True, help="output folder")
    regress.add_argument("--batch-size", type=shared.positive_int, default=d.batch_size,
                         help=f"crops per network pass (default {d.batch_size})")
    regress.add_argument("--landmarks", type=Path, default=None,
                         help="68x2 landmarks (a file for one photo, a folder of <id>.npy for "
                              "several) instead of detection")
    shared.detector(regress, d.detector)
    regress.add_argument("--face", type=int, default=d.face_index, metavar="N",
                         help="which face when a photo shows several: 0 = the largest (default)")
    regress.add_argument("--outputs", choices=OUTPUT_SETS, default=d.outputs,
                         help="all: the fit's result files (default); params: params.npz, "
                              "camera.npz, landmarks.npz and report.json only (large batches: "
                              "meshes and pictures cost more than the network)")
    regress.add_argument("--overwrite", action="store_true", help="redo photos already done")
    regress.add_argument("--changed-photos", choices=("refit", "refuse"), default=d.on_changed,
                         help="a photo done before whose file has changed: redo it (default) or refuse")
    shared.device(regress, d.device)
    shared.model(regress)
    regress.set_defaults(func=cmd_regress)
