"""The ``flamefit`` command line. Each subcommand is a thin wrapper over a Python function.

    flamefit inspect [PATH]           what a model file or folder holds (default: the model in use)
    flamefit convert SRC DST          FLAME pickle -> plain .npz (loads without pickle)
    flamefit fit INPUT... --out DIR   fit photos (files, folders, globs)
    flamefit demo [--out DIR]         the main job on the embedded default
    flamefit build-texture-space IMAGES... --out DIR    an albedo PCA space from many fits
    flamefit sample-texture-space FILE --out DIR        look at an albedo space
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("flamefit")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flame-dir", type=Path, default=None,
        help="folder with the FLAME files (default: $FLAMEFIT_FLAME_DIR or data/flame; the open "
             "demo head is used when no FLAME model is found there)",
    )
    parser.add_argument("--demo-head", action="store_true",
                        help="use the open demo head even when FLAME is present")


def cmd_inspect(args: argparse.Namespace) -> int:
    from flame.inspection import describe_path
    from flame.selection import select_model

    path = args.path
    if path is None:
        files = select_model(args.flame_dir, demo=args.demo_head)
        print(f"model in use: {files.describe()}\n")
        path = files.folder
    text, failed = describe_path(path)
    print(text)
    return 1 if failed else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from flame.model_file import convert_flame_model

    written = convert_flame_model(args.source, args.destination)
    print(f"wrote {written}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from fitting.fit_images import FitOptions, fit_images

    options = FitOptions(
        device=args.device, batch_size=args.batch_size, resolution=args.resolution,
        rigid_steps=args.iters[0], full_steps=args.iters[1], camera=args.camera,
        flame_dir=args.flame_dir, demo_head=args.demo_head, landmarks=args.landmarks,
        mask=args.mask, init=args.init, detector=args.detector, face_index=args.face,
        texture_space=args.texture_space,
        texture_offset=args.texture_offset, gif=args.gif, seed=args.seed,
        overwrite=args.overwrite, backend=args.backend,
    )
    summary = fit_images(args.inputs, args.out, options)
    for name, reason in summary.failed.items():
        print(f"failed: {name}: {reason}")
    print(summary.line())
    return 0 if summary.fitted or summary.skipped else 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _iters(text: str) -> tuple[int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected RIGID,FULL step counts like 200,800; got {text!r}")
    return values


def cmd_demo(args: argparse.Namespace) -> int:
    from fitting.demo import run_demo

    summary = run_demo(args.out, flame_dir=args.flame_dir, demo_head=args.demo_head)
    return 0 if summary.fitted else 1


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flamefit",
        description="3D head reconstruction from photos by analysis-by-synthesis with FLAME "
                    "(or the open demo head) and a differentiable renderer.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inspect = sub.add_parser(
        "inspect", help="print what a model file or folder holds",
        description="Print what a FLAME-format file holds (model, landmark embedding, UV "
                    "template, albedo space, masks), or every such file in a folder. Without a "
                    "path: the model flamefit would use.",
    )
    inspect.add_argument("path", nargs="?", type=Path, help="a model file or a folder of them")
    add_model_options(inspect)
    inspect.set_defaults(func=cmd_inspect)

    convert = sub.add_parser(
        "convert", help="convert a FLAME pickle to a plain .npz",
        description="Read a FLAME model pickle (generic_model.pkl / flame2023.pkl, chumpy not "
                    "needed) and write the same arrays as a plain .npz that loads without pickle.",
    )
    convert.add_argument("source", type=Path, help="generic_model.pkl or flame2023.pkl")
    convert.add_argument("destination", type=Path, help="output .npz path")
    convert.set_defaults(func=cmd_convert)

    fit = sub.add_parser(
        "fit", help="fit photos (files, folders, globs)",
        description="Fit the head model to every photo: detect the face and its 68 landmarks, "
                    "crop, then optimise pose and camera on landmarks, then shape, expression, "
                    "pose, albedo, SH light and camera on landmarks and pixels. Writes OUT/<name>/ "
                    "per photo (params.npz, mesh.obj+mtl+png, camera.npz, landmarks.npz, "
                    "overlay.png, sheet.png, report.json). Reruns skip photos already done.",
    )
    fit.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns")
    fit.add_argument("--out", type=Path, required=True, help="output folder")
    fit.add_argument("--device", default="cuda" if _cuda() else "cpu",
                     help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    fit.add_argument("--batch-size", type=_positive, default=1,
                     help="images fitted together (use 16-256 on a GPU; default 1)")
    fit.add_argument("--resolution", type=int, default=224, help="crop size in pixels (default 224)")
    fit.add_argument("--iters", type=_iters, default=(200, 800), metavar="RIGID,FULL",
                     help="steps of the rigid (landmarks) and full stages (default 200,800)")
    fit.add_argument("--camera", choices=("orthographic", "perspective"), default="orthographic",
                     help="DECA's orthographic [s,tx,ty] (default) or a pinhole with 12 degree FOV")
    fit.add_argument("--landmarks", type=Path, default=None,
                     help="68x2 landmarks (.npy/.txt/.pts, original photo pixels) instead of "
                          "detection: a file for a single photo, or a folder with <stem>.npy etc.")
    fit.add_argument("--mask", type=Path, default=None,
                     help="mask image (white = use) the size of the photo, or a folder of "
                          "<stem>.png; limits the photometric term")
    fit.add_argument("--init", type=Path, default=None,
                     help="initial parameters: a params.npz of ours or a DECA code dict "
                          "(.npy/.npz/.pkl), or a folder of <stem>.* files; refined by the fit")
    fit.add_argument("--detector", choices=("auto", "dlib", "fan"), default="auto",
                     help="face/landmark detector (default auto = dlib HOG, CNN fallback)")
    fit.add_argument("--face", type=int, default=0, metavar="N",
                     help="which face when a photo shows several: 0 = the largest (default), "
                          "1 = the next largest, ...")
    fit.add_argument("--texture-space", type=Path, default=None,
                     help="albedo space to fit with (FLAME_texture.npz layout), e.g. one built "
                          "by build-texture-space (default: the model folder's)")
    fit.add_argument("--texture-offset", action="store_true",
                     help="also fit a smooth per-texel albedo offset")
    fit.add_argument("--backend", choices=("auto", "torch", "nvdiffrast"), default="auto",
                     help="rasteriser: auto = nvdiffrast on CUDA when installed, else torch")
    fit.add_argument("--gif", action="store_true", help="also write progress.gif per photo")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--overwrite", action="store_true", help="refit photos already done")
    add_model_options(fit)
    fit.set_defaults(func=cmd_fit)

    demo = sub.add_parser(
        "demo", help="run the main job on the embedded default",
        description="Fit the astronaut photo that ships with scikit-image (with FLAME when "
                    "data/flame holds it, else the open demo head) and print where the results are.",
    )
    demo.add_argument("--out", type=Path, default=Path("out") / "demo",
                      help="output folder (default: out/demo)")
    add_model_options(demo)
    demo.set_defaults(func=cmd_demo)

    from texture_space.cli import add_subcommands as add_texture_space_subcommands

    add_texture_space_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flamefit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from fitting.errors import InputError
    from flame.errors import ModelFileError

    try:
        return args.func(args)
    except (ModelFileError, InputError) as error:
        print(f"flamefit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
