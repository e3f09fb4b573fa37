"""Load the named vertex regions of a FLAME-format mesh (``FLAME_masks.pkl``).

The file is a Python-2 pickled dict from region name (``face``, ``left_eyeball``,
``right_eyeball``, ``lips``, ``nose``, ``neck``, ``scalp``, ``forehead``, ``eye_region``,
``boundary``, ``left_ear``, ``right_ear`` ...) to an array of vertex indices. It is read with the
restricted unpickler of :mod:`flamefit.flame.pickle_io`. A plain ``.npz`` with one key per region is
accepted too (read without pickle).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from flamefit.flame.errors import ModelFileError
from flamefit.flame.pickle_io import load_pickle


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ModelFileError(path, "file not found; download FLAME_masks.pkl from the FLAME website or check the path.")
    if path.suffix.lower() != ".npz":
        return load_pickle(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(path, f"is not a readable plain-array .npz ({error}); write the masks again.") from error


def _indices(path: Path, name: str, value: Any, n_vertices: int | None) -> np.ndarray:
    """``(N,)`` int64 vertex indices of one region; a boolean ``(V,)`` mask is turned into indices."""
    array = np.asarray(value)
    if array.dtype == bool:
        if n_vertices is not None and array.shape != (n_vertices,):
            raise ModelFileError(
                path, f"mask {name!r} is a boolean array of shape {array.shape}, expected ({n_vertices},); is this the mask file of another model?"
            )
        return np.flatnonzero(array).astype(np.int64)
    if array.dtype.kind not in "iu" or array.ndim > 1:
        raise ModelFileError(path, f"mask {name!r} has {array.dtype} values of shape {array.shape}, expected a list of vertex indices; the file is corrupt.")
    array = array.reshape(-1).astype(np.int64)
    if array.size and array.min() < 0:
        raise ModelFileError(path, f"mask {name!r} holds the negative vertex index {int(array.min())}; the file is corrupt.")
    if n_vertices is not None and array.size and array.max() >= n_vertices:
        raise ModelFileError(
            path,
            f"mask {name!r} refers to vertex {int(array.max())} but the model has {n_vertices} vertices; "
            "is this the mask file of another model?",
        )
    return array


def load_vertex_masks(path: str | Path, n_vertices: int | None = None) -> dict[str, np.ndarray]:
    """Load ``FLAME_masks.pkl`` (or an ``.npz`` of the same regions).

    Args:
        path: the mask file.
        n_vertices: the model's vertex count; every index must be below it.

    Returns:
        Region name -> ``(N,)`` int64 vertex indices, in the file's order.

    Raises:
        ModelFileError: missing, unreadable or refused file, not a dict of index arrays, or an
            index outside the mesh.
    """
    path = Path(path)
    content = _read(path)
    if not isinstance(content, dict) or not content:
        raise ModelFileError(
            path, f"holds {type(content).__name__ if content else 'nothing'}, not a dict of region -> vertex indices; is this FLAME_masks.pkl?"
        )
    return {str(name): _indices(path, str(name), value, n_vertices) for name, value in content.items()}
