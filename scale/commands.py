"""The scale-out layer's command line: ``flamefit select``, and dataset inputs and ``--ray`` on
``fit``, ``regress`` and ``build-texture-space``.

:func:`register` adds ``select`` and gives the ``fit``, ``regress`` and ``build-texture-space``
parsers (which their packages registered before) a "datasets and scale-out" option group. Their commands then
go through :mod:`flamefit.scale.jobs` when an input is a zip / tar / parquet file (or a folder
of them), or ``--ray``, ``--only`` or ``--landmarks-from-metadata`` is given; otherwise they run
exactly as before (the single-machine path stays the default). Importing this module imports
neither torch nor Ray.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flamefit.fitting.choices import DETECTORS
from flamefit.scale.options import LOCAL_RAY, ScaleOptions, SelectOptions


def scale_options(args: argparse.Namespace) -> ScaleOptions:
    """The :class:`ScaleOptions` of parsed arguments."""
    return ScaleOptions(ray=args.ray, workers=args.ray_workers, cpus_per_worker=args.ray_cpus_per_worker,
                        gpus_per_worker=args.ray_gpus_per_worker,
                        landmarks_from_metadata=args.landmarks_from_metadata, only=args.only,
                        ray_cpus=args.ray_cpus)


def _wants_scale(args: argparse.Namespace) -> bool:
    from flamefit.scale.datasets import is_dataset_input

    return (args.ray is not None or args.only is not None or args.landmarks_from_metadata
            or any(is_dataset_input(entry) for entry in args.inputs))


def _resolve(path: str):
    """``"module:name"`` -> the object (imported when the command runs, not when the parser is built)."""
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _batch_command(single_machine, job: str, options_of: str):
    """``fit`` / ``regress``: ``single_machine(args)`` unless the arguments ask for a dataset or
    Ray; then ``job(inputs, out, options_of(args), scale options)``, printed as ``fit`` prints."""
    def command(args: argparse.Namespace) -> int:
        if not _wants_scale(args):
            return single_machine(args)
        from flamefit.fitting.commands import run_fit_job

        run, options = _resolve(job), _resolve(options_of)(args)
        return run_fit_job(lambda: run(args.inputs, args.out, options, scale_options(args)))

    return command


def _build_command(single_machine):
    def cmd_build_texture_space(args: argparse.Namespace) -> int:
        if not _wants_scale(args):
            return single_machine(args)
        from flamefit.scale.texture_jobs import build_texture_space_dataset
        from flamefit.texture_space.commands import build_options, print_build_summary

        summary = build_texture_space_dataset(args.inputs, args.out, build_options(args), scale_options(args))
        return print_build_summary(summary, args.out)

    return cmd_build_texture_space


def cmd_select(args: argparse.Namespace) -> int:
    from flamefit.scale.select import select_photos

    options = SelectOptions(count=args.count, max_yaw=args.max_yaw, max_pitch=args.max_pitch,
                            min_face=args.min_face, min_sharpness=args.min_sharpness,
                            balance=args.balance, detector=args.detector, seed=args.seed)
    selection = select_photos(args.inputs, args.out, options, scale_options(args))
    print(selection.table())
    print(f"chose {len(selection.chosen)} of {selection.n_photos} photos; wrote {', '.join(map(str, selection.files))}")
    return 0 if len(selection.chosen) == options.count else 1


def add_scale_options(parser: argparse.ArgumentParser, shared) -> None:
    """The "datasets and scale-out" option group."""
    group = parser.add_argument_group(
        "datasets and scale-out (flamefit.scale)",
        "Inputs may also be zip files, webdataset tar shards and parquet files with image bytes "
        "(ids: the path inside, without suffix, as for a folder), and FFHQ's folder tree with its "
        "ffhq-dataset-v2.json.")
    group.add_argument("--only", type=Path, default=None, metavar="LIST",
                       help="only the photos whose ids this text file lists, one a line (flamefit "
                            "select's selected.txt)")
    group.add_argument("--landmarks-from-metadata", action="store_true",
                       help="use the 68 landmarks of FFHQ's ffhq-dataset-v2.json (found in the folder "
                            "given, next to an archive or up to two folders above) instead of detecting")
    group.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, metavar="ADDRESS",
                       help="run on a Ray cluster: alone, a local one started for the job (or the one "
                            "$RAY_ADDRESS names); ADDRESS joins one (auto, HEAD:6379, ray://HEAD:10001). "
                            "Ray Data reads the photos, a pool of actors works on them (one model per actor); "
                            "--out must be on storage every node writes to. Needs flamefit[ray]")
    group.add_argument("--ray-workers", type=shared.positive_int, default=None, metavar="N",
                       help="actors (default: one per GPU, else the cluster's CPUs less one)")
    group.add_argument("--ray-cpus-per-worker", type=_number(0, above=True), default=None, metavar="CPUS",
                       help="CPUs each actor reserves (default 1 with GPUs, else 0.5: fractions leave "
                            "room for the readers)")
    group.add_argument("--ray-gpus-per-worker", type=_number(0, above=False), default=None, metavar="GPUS",
                       help="GPUs each actor reserves (default 1 when the cluster has GPUs, else 0)")
    group.add_argument("--ray-cpus", type=shared.positive_int, default=None, metavar="N",
                       help="CPUs of the local Ray instance started for the job (default: all)")


def _number(minimum: float, above: bool):
    """argparse type: a number above ``minimum`` (``above``) or at least ``minimum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > minimum if above else value >= minimum):
            raise argparse.ArgumentTypeError(
                f"expected a number {'above' if above else 'of at least'} {minimum:g}, got {text!r}")
        return value

    return parse


def register(subparsers, shared) -> None:
    """Add ``select`` and the dataset options of ``fit``, ``regress`` and ``build-texture-space``
    (registered before by their packages) to ``flamefit``'s subparsers."""
    wrappers = {
        "fit": lambda f: _batch_command(f, "flamefit.scale.jobs:fit_dataset", "flamefit.fitting.commands:fit_options"),
        "regress": lambda f: _batch_command(f, "flamefit.scale.jobs:regress_dataset",
                                            "flamefit.regressor.commands:regress_options"),
        "build-texture-space": _build_command,
    }
    for name, wrap in wrappers.items():
        parser = subparsers.choices.get(name)
        if parser is None:
            continue
        add_scale_options(parser, shared)
        parser.set_defaults(func=wrap(parser.get_default("func")))

    d = SelectOptions()
    select = subparsers.add_parser(
        "select", help="pick N photos for a texture space by stated criteria",
        description="Measure every photo of a dataset (folders, zip, tar, parquet; FFHQ's layout) and "
                    "choose COUNT for a texture space: exactly one face (or FFHQ's metadata landmarks), "
                    "head yaw and pitch within limits (the rotation of the open model's mean face that "
                    "best explains the inner landmarks), face size, sharpness (variance of the Laplacian on the face crop), "
                    "and balance across skin tones (the individual typology angle of the cheeks' "
                    "and forehead's skin, in six bands). Writes OUT/selected.txt (the ids, for "
                    "--only), OUT/selection.csv (every photo's measures and why it was or was not "
                    "chosen) and OUT/selection.json (criteria and counts per band).",
        epilog="Exit status: 0 COUNT photos chosen, 1 fewer passed the criteria (those are "
               "written), 2 bad usage.")
    select.add_argument("inputs", nargs="+", help="image files, folders, globs, zip / tar / parquet files")
    select.add_argument("--out", type=Path, required=True, help="output folder")
    select.add_argument("--count", type=shared.positive_int, default=d.count,
                        help=f"photos to choose (default {d.count}, the reference recipe's)")
    select.add_argument("--max-yaw", type=float, default=d.max_yaw,
                        help=f"largest |yaw| in degrees (default {d.max_yaw:g})")
    select.add_argument("--max-pitch", type=float, default=d.max_pitch,
                        help=f"largest |pitch| in degrees (default {d.max_pitch:g})")
    select.add_argument("--min-face", type=float, default=d.min_face,
                        help=f"smallest face (landmark box side, original pixels; default {d.min_face:g})")
    select.add_argument("--min-sharpness", type=float, default=d.min_sharpness,
                        help="smallest variance of the Laplacian of the 128 px face crop "
                             f"(default {d.min_sharpness:g})")
    select.add_argument("--balance", action=argparse.BooleanOptionalAction, default=d.balance,
                        help="balance the choice across the six skin-tone bands (default: yes); "
                             "--no-balance takes the sharpest")
    select.add_argument("--seed", type=int, default=d.seed, help=f"seed of the ties (default {d.seed})")
    select.add_argument("--detector", choices=DETECTORS, default=d.detector,
                        help=f"face/landmark detector; every face it finds is counted (default {d.detector})")
    add_scale_options(select, shared)
    select.set_defaults(func=cmd_select)
