"""The ``flamefit`` command line. Each subcommand is a thin wrapper over a Python function.

    flamefit inspect [PATH]           what a model file or folder holds (default: the model in use)
    flamefit convert SRC DST          FLAME pickle -> plain .npz (loads without pickle)
    flamefit demo [--out DIR]         the main job on the embedded default
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("flamefit")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
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
    print(describe_path(path))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from flame.model_file import convert_flame_model

    written = convert_flame_model(args.source, args.destination)
    print(f"wrote {written}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from fitting.demo import run_demo

    run_demo(args.out, flame_dir=args.flame_dir, demo_head=args.demo_head)
    return 0


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
    _add_model_options(inspect)
    inspect.set_defaults(func=cmd_inspect)

    convert = sub.add_parser(
        "convert", help="convert a FLAME pickle to a plain .npz",
        description="Read a FLAME model pickle (generic_model.pkl / flame2023.pkl, chumpy not "
                    "needed) and write the same arrays as a plain .npz that loads without pickle.",
    )
    convert.add_argument("source", type=Path, help="generic_model.pkl or flame2023.pkl")
    convert.add_argument("destination", type=Path, help="output .npz path")
    convert.set_defaults(func=cmd_convert)

    demo = sub.add_parser(
        "demo", help="run the main job on the embedded default",
        description="Run flamefit on its embedded default and print where the results are.",
    )
    demo.add_argument("--out", type=Path, default=Path("out") / "demo",
                      help="output folder (default: out/demo)")
    _add_model_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flamefit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from flame.errors import ModelFileError

    try:
        return args.func(args)
    except ModelFileError as error:
        print(f"flamefit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
