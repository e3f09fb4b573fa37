"""Write the demo head's files in the real FLAME formats, and cache them atomically."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from flamefit.flame.demo_head.albedo import COMPONENT_NAMES
from flamefit.flame.demo_head.builder import GENERATOR_VERSION, MODEL_NAME, DemoHead, build_demo_head

FOLDER_NAME = f"demo_head_v{GENERATOR_VERSION}"
FILE_NAMES = (
    "generic_model.pkl", "landmark_embedding.npy", "head_template_mesh.obj",
    "FLAME_masks.pkl", "FLAME_texture.npz", "README.txt",
)


def write_obj(path: Path, vertices: np.ndarray, vt: np.ndarray, faces: np.ndarray, ft: np.ndarray) -> None:
    """Write ``v``, ``vt`` and ``f v/vt`` lines (1-based), no material library."""
    lines = ["# flamefit open demo head (not FLAME): UV template"]
    lines += [f"v {x:.8f} {y:.8f} {z:.8f}" for x, y, z in vertices]
    lines += [f"vt {u:.7f} {v:.7f}" for u, v in vt]
    corners = np.stack([faces + 1, ft + 1], axis=-1).reshape(-1, 6)
    lines += ["f {}/{} {}/{} {}/{}".format(*row) for row in corners.tolist()]
    path.write_text("\n".join(lines) + "\n")


def write_demo_head(folder: str | Path, head: DemoHead | None = None) -> Path:
    """Write all files of the demo head into ``folder`` (created if needed); returns it."""
    import torch

    from flamefit.flame.texture_space_io import save_texture_space

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    head = head or build_demo_head()
    with open(folder / "generic_model.pkl", "wb") as fh:
        pickle.dump(head.model, fh, protocol=2)
    embedding = {
        key: torch.from_numpy(value) if key.startswith("dynamic") else value
        for key, value in head.landmarks.items()
    }
    np.save(folder / "landmark_embedding.npy", np.array(embedding, dtype=object), allow_pickle=True)
    write_obj(folder / "head_template_mesh.obj", head.model["v_template"], head.vt, head.model["f"].astype(np.int64), head.ft)
    with open(folder / "FLAME_masks.pkl", "wb") as fh:
        pickle.dump(head.masks, fh, protocol=2)
    save_texture_space(
        folder / "FLAME_texture.npz", head.albedo_mean, head.albedo_basis, head.vt, head.ft,
        {"model_name": MODEL_NAME, "generator_version": GENERATOR_VERSION, "components": "; ".join(COMPONENT_NAMES)},
    )
    (folder / "README.txt").write_text(
        f"{MODEL_NAME}\n\n"
        "This folder holds the flamefit project's generated demo head. It is NOT FLAME and is not\n"
        "derived from FLAME: an analytic head made by flame.demo_head, written in the same file\n"
        "formats as the real FLAME files so every FLAME code path can run without them.\n"
        f"generator_version: {GENERATOR_VERSION}\n"
    )
    return folder


def default_cache_dir() -> Path:
    """``$FLAMEFIT_CACHE`` if set, else ``~/.cache/flamefit``."""
    env = os.environ.get("FLAMEFIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "flamefit"


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILE_NAMES)


def ensure_demo_head(cache_dir: str | Path | None = None, force: bool = False) -> Path:
    """Folder holding the demo head's files, generating them on first use.

    Args:
        cache_dir: the cache root; the files live in ``cache_dir / "demo_head_v<version>"``.
            Default ``$FLAMEFIT_CACHE`` or ``~/.cache/flamefit``.
        force: regenerate even if the folder exists.

    Returns:
        The folder. Generation is deterministic; it writes into a temporary folder beside the
        target and renames it into place, so a concurrent process sees either nothing or the
        complete folder (if two generate at once, one rename wins and the other is discarded).
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / FOLDER_NAME
    if not force and _is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.tmp-", dir=root))
    try:
        write_demo_head(staging)
        if force and target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.old-", dir=root))
            os.replace(target, trash / FOLDER_NAME)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not _is_complete(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
