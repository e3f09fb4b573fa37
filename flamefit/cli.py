"""The ``flamefit`` command line: one parser, shared option groups, subcommands from each package.

    flamefit inspect [PATH]           what a model file or folder holds (default: the model in use)
    flamefit convert SRC DST          FLAME pickle -> plain .npz (loads without pickle)
    flamefit fit INPUT... --out DIR   fit photos (files, folders, globs)
    flamefit demo [--out DIR]         the main job on the embedded default
    flamefit evaluate RESULTS --truth DIR   landmark NME of fit results against annotations
    flamefit build-texture-space IMAGES... --out DIR    an albedo PCA space from many fits
    flamefit sample-texture-space FILE --out DIR        look at an albedo space
    flamefit serve [--port 8000]      the web page: upload, watch the fit, view, download
    flamefit select DATASET --out DIR pick photos for a texture space (one face, yaw, size,
                                      sharpness, skin-tone balance)
    fit / build-texture-space ... --ray [ADDRESS]   the same jobs on a Ray cluster (flamefit.scale)
    flamefit train-regressor --out DIR     train the image regressor (synthetic renders, fits)
    flamefit regress INPUT... --out OUT [--model DIR]  feed-forward reconstruction

Each package registers its own subcommands (``flamefit.flame.commands``,
``flamefit.fitting.commands``, ``flamefit.texture_space.commands``, ``flamefit.regressor.commands``,
``flamefit.web.commands``): ``register(subparsers,
shared)`` adds them with the option groups of :class:`SharedOptions`, which this module owns
and passes down (so no package imports the command line). Choices come from the packages'
torch-free ``choices`` modules and defaults from their options dataclasses; building the parser
and ``--help`` import neither torch nor probe CUDA.

Exit status: 0 everything done, 1 some inputs failed (each named once, with its reason),
2 bad usage or environment (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flamefit.fitting.choices import DETECTORS
from flamefit.renderer.choices import BACKENDS, CAMERA_MODELS

log = logging.getLogger("flamefit")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def step_counts(text: str) -> tuple[int, int]:
    """argparse type: ``RIGID,FULL`` optimiser steps, each >= 0 and not both 0."""
    try:
        values = tuple(int(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError(
            f"expected two step counts RIGID,FULL, each 0 or more, like 200,800; got {text!r}")
    if values == (0, 0):
        raise argparse.ArgumentTypeError("0,0 would fit nothing: give at least one step, like 200,800")
    return values


def resolution(low: int, high: int):
    """argparse type: a pixel size in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a size from {low} to {high} pixels, got {text!r}")
        return value

    return parse


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``flamefit fit: error: ... (see flamefit fit --help)``."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--iters -1,3`` -> ``--iters=-1,3``: argparse would take ``-1,3`` for an option and say
    only "expected one argument"; joined, the option's own check explains what is wrong."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and len(token) > 1 \
                and token[0] == "-" and token[1].isdigit():
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


class SharedOptions:
    """The option groups several subcommands share; a package's ``register`` calls these with
    its own defaults (taken from its options dataclass)."""

    positive_int = staticmethod(positive_int)
    step_counts = staticmethod(step_counts)
    resolution = staticmethod(resolution)

    @staticmethod
    def model(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("head model")
        group.add_argument(
            "--flame-dir", type=Path, default=None,
            help="folder with the FLAME files (default: $FLAMEFIT_FLAME_DIR or data/flame; the "
                 "open model, ICT-FaceKit Light, is used when no FLAME model is found there)")
        group.add_argument("--open-model", action="store_true",
                           help="use the open model (ICT-FaceKit Light, MIT) even when FLAME is present")

    @staticmethod
    def device(parser: argparse.ArgumentParser, default: str) -> None:
        group = parser.add_argument_group("device")
        group.add_argument("--device", default=default,
                           help=f"torch device: auto (CUDA when available), cpu, cuda, cuda:1 "
                                f"(default {default})")
        group.add_argument("--backend", choices=BACKENDS, default="auto",
                           help="rasteriser: auto = nvdiffrast on CUDA when installed, else torch")

    @staticmethod
    def detector(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument("--detector", choices=DETECTORS, default=default,
                            help=f"face/landmark detector (default {default}: mediapipe's 478 "
                                 f"points when flamefit[mediapipe] is installed, else dlib's 68)")

    @staticmethod
    def camera(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument("--camera", choices=CAMERA_MODELS, default=default,
                            help=f"camera model (default {default}): DECA's orthographic "
                                 f"[s,tx,ty], or a pinhole with a 12 degree field of view")


def build_parser() -> argparse.ArgumentParser:
    from flamefit import __version__
    from flamefit.fitting import commands as fitting_commands
    from flamefit.flame import commands as flame_commands
    from flamefit.regressor import commands as regressor_commands
    from flamefit.texture_space import commands as texture_space_commands
    from flamefit.scale import commands as scale_commands
    from flamefit.web import commands as web_commands

    parser = ArgumentParser(
        prog="flamefit",
        description="3D head reconstruction from photos by analysis-by-synthesis with FLAME "
                    "(or the open ICT-FaceKit model) and a differentiable renderer.",
        epilog="Exit status: 0 all done, 1 some photos failed, 2 bad usage, 130 interrupted.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"flamefit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = SharedOptions()
    for package in (flame_commands, fitting_commands, texture_space_commands, regressor_commands,
                    web_commands, scale_commands):  # scale last: it extends fit, regress, build-texture-space
        package.register(sub, shared)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flamefit`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(_join_negative_values(argv))
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from flamefit.fitting.errors import InputError
    from flamefit.flame.errors import ModelFileError
    from flamefit.utils import UsageError

    try:
        return args.func(args)
    except (ModelFileError, InputError, UsageError) as error:
        print(f"flamefit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nflamefit {args.command}: interrupted. Results finished so far are kept; "
              "run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
