"""The head-model subcommands of ``flamefit``: ``inspect``, ``convert`` and ``convert-ict``.

:func:`register` adds them to the ``flamefit`` parser (:mod:`flamefit.cli`); each is a thin
wrapper over :func:`flamefit.flame.inspection.describe_path`,
:func:`flamefit.flame.model_file.convert_flame_model` and
:func:`flamefit.flame.ict_facekit.convert_ict`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_inspect(args: argparse.Namespace) -> int:
    from flamefit.flame.inspection import describe_path
    from flamefit.flame.selection import select_model

    path = args.path
    if path is None:
        files = select_model(args.flame_dir, open_model=args.open_model)
        print(f"model in use: {files.describe()}\n")
        path = files.folder
    text, failed = describe_path(path)
    print(text)
    return 1 if failed else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from flamefit.flame.model_file import convert_flame_model
    from flamefit.utils import UsageError

    target = args.destination / args.source.with_suffix(".npz").name if args.destination.is_dir() \
        else args.destination
    if target.exists() and not args.overwrite:
        raise UsageError(f"{target} exists; pass --overwrite to replace it, or give another destination")
    written = convert_flame_model(args.source, args.destination)
    print(f"wrote {written}")
    return 0


def cmd_convert_ict(args: argparse.Namespace) -> int:
    from flamefit.flame.ict_facekit import FILE_NAMES, convert_ict
    from flamefit.utils import UsageError

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder; give a folder path")
    existing = [name for name in FILE_NAMES if (args.out / name).exists()]
    if existing and not args.overwrite:
        raise UsageError(f"--out {args.out} already holds {', '.join(existing)}; pass --overwrite to "
                         "replace them, or give another folder")
    written = convert_ict(args.ict_folder, args.out, show_progress=True)
    print(f"wrote {written}/ ({', '.join(FILE_NAMES)}); use it with --flame-dir {written}")
    return 0


def register(subparsers, shared) -> None:
    """Add ``inspect`` and ``convert`` to ``flamefit``'s subparsers (``shared``: the option
    groups of :class:`flamefit.cli.SharedOptions`)."""
    inspect = subparsers.add_parser(
        "inspect", help="print what a model file or folder holds",
        description="Print what a FLAME-format file holds (model, landmark embedding, UV "
                    "template, albedo space, masks), or every such file in a folder. Without a "
                    "path: the model flamefit would use.",
    )
    inspect.add_argument("path", nargs="?", type=Path, help="a model file or a folder of them")
    shared.model(inspect)
    inspect.set_defaults(func=cmd_inspect)

    convert = subparsers.add_parser(
        "convert", help="convert a FLAME pickle to a plain .npz",
        description="Read a FLAME model pickle (generic_model.pkl / flame2023.pkl, chumpy not "
                    "needed) and write the same arrays as a plain .npz that loads without pickle.",
    )
    convert.add_argument("source", type=Path, help="generic_model.pkl or flame2023.pkl")
    convert.add_argument("destination", type=Path,
                         help="output .npz path, or a folder to write <source name>.npz into")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing destination file")
    convert.set_defaults(func=cmd_convert)

    convert_ict = subparsers.add_parser(
        "convert-ict", help="convert an ICT-FaceKit checkout into a FLAME-format model folder",
        description="Read an ICT-FaceKit Light checkout exactly as distributed (FaceXModel/*.obj, "
                    "vertex_indices.json, LICENSE) and write the model flamefit ships as its open "
                    "default: generic_model.npz, landmark_embedding.npy, head_template_mesh.obj, "
                    "FLAME_masks.pkl, FLAME_texture.npz (a generated albedo) and ICT's licence. "
                    "Deterministic: the shipped folder is rebuilt bit for bit. Needs pyfqmr "
                    "(pip install 'flamefit[convert]').",
    )
    convert_ict.add_argument("ict_folder", type=Path, help="the root of an ICT-FaceKit checkout")
    convert_ict.add_argument("--out", type=Path, required=True, help="output folder")
    convert_ict.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    convert_ict.set_defaults(func=cmd_convert_ict)
