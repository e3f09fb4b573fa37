"""Load where the 68 face landmarks sit on a FLAME-format mesh.

Two distributions exist:

* DECA's ``landmark_embedding.npy``: a 0-d object array holding a dict with
  ``static_lmk_faces_idx (51,)``, ``static_lmk_bary_coords (51, 3)``, ``dynamic_lmk_faces_idx
  (79, 17)`` and ``dynamic_lmk_bary_coords (79, 17, 3)`` (the dynamic ones as pickled torch
  tensors), ``full_lmk_faces_idx (1, 68)`` and ``full_lmk_bary_coords (1, 68, 3)``.
* RingNet's / smplx's pair ``flame_static_embedding.pkl`` (a Python-2 pickled dict
  ``lmk_face_idx (51,)``, ``lmk_b_coords (51, 3)``) and ``flame_dynamic_embedding.npy`` (a 0-d
  object array holding ``lmk_face_idx (79, 17)``, ``lmk_b_coords (79, 17, 3)``). The pair has no
  fixed 68-point set; it is built as the yaw-0 contour row followed by the 51 static points.

Both ``.npy`` files are pickles inside. They are read with the restricted unpickler of
:mod:`flamefit.flame.pickle_io` (numpy, builtins and, for these files only, torch's tensor
reconstruction), never with ``np.load(allow_pickle=True)``, so a tampered file cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_data import LandmarkEmbedding
from flamefit.flame.pickle_io import load_object_npy, load_pickle

N_STATIC = 51
N_CONTOUR = 17
N_YAW_BINS = 79
N_FULL = N_CONTOUR + N_STATIC

DECA_FILE = "landmark_embedding.npy"
STATIC_FILE = "flame_static_embedding.pkl"
DYNAMIC_FILE = "flame_dynamic_embedding.npy"

_DECA_KEYS = (
    "static_lmk_faces_idx",
    "static_lmk_bary_coords",
    "dynamic_lmk_faces_idx",
    "dynamic_lmk_bary_coords",
    "full_lmk_faces_idx",
    "full_lmk_bary_coords",
)
_PAIR_KEYS = ("lmk_face_idx", "lmk_b_coords")
_BARY_TOLERANCE = 1e-3


def _read_dict(path: Path) -> dict[str, Any]:
    """The dict held by an embedding file (``.npy`` 0-d object array or ``.pkl``)."""
    if path.suffix.lower() == ".npy":
        content = load_object_npy(path, allow_torch=True)
    else:
        content = load_pickle(path)
    if not isinstance(content, dict):
        raise ModelFileError(
            path, f"holds a {type(content).__name__}, not a dict of landmark arrays; is this a landmark embedding file?"
        )
    return content


def _require(path: Path, content: Mapping[str, Any], keys: tuple[str, ...], kind: str) -> None:
    missing = [key for key in keys if key not in content]
    if missing:
        raise ModelFileError(path, f"is missing the keys {missing} of {kind}; is this the right landmark file?")


def _fit_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Drop or add singleton axes (DECA's ``(1, 68)`` -> ``(68,)``); other shapes stay as they are."""
    def core(dims: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(d for d in dims if d != 1)

    return array.reshape(shape) if array.shape != shape and core(array.shape) == core(shape) else array


def _faces(path: Path, label: str, value: Any, shape: tuple[int, ...], n_faces: int | None) -> np.ndarray:
    """Triangle indices as int64 of ``shape``, checked against the mesh's face count."""
    array = _fit_shape(np.asarray(value), shape)
    if array.shape != shape:
        raise ModelFileError(path, f"{label} face indices have shape {array.shape}, expected {shape}; the file is corrupt or not a FLAME landmark embedding.")
    if array.dtype.kind not in "iu":
        if array.dtype.kind != "f" or not np.array_equal(array, np.round(array)):
            raise ModelFileError(path, f"{label} face indices are {array.dtype}, expected integers; the file is corrupt.")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ModelFileError(path, f"{label} face index {int(array.min())} is negative; the file is corrupt.")
    if n_faces is not None and array.size and array.max() >= n_faces:
        raise ModelFileError(
            path,
            f"{label} face index {int(array.max())} exceeds the mesh's {n_faces} faces; is this the embedding of another model?",
        )
    return array


def _bary(path: Path, label: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Barycentric coordinates as float64 of ``shape``: finite, non-negative, rows summing to 1."""
    array = _fit_shape(np.asarray(value), shape)
    if array.shape != shape or array.dtype.kind not in "fiu":
        raise ModelFileError(path, f"{label} barycentric coordinates have shape {array.shape} ({array.dtype}), expected {shape} floats; the file is corrupt.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ModelFileError(path, f"{label} barycentric coordinates hold NaN or infinite values; the file is corrupt.")
    if array.size and array.min() < -_BARY_TOLERANCE:
        raise ModelFileError(path, f"{label} barycentric coordinates include {array.min():.4f} < 0; the file is corrupt.")
    sums = array.sum(axis=-1)
    worst = np.unravel_index(int(np.argmax(np.abs(sums - 1.0))), sums.shape) if sums.size else None
    if worst is not None and abs(sums[worst] - 1.0) > _BARY_TOLERANCE:
        raise ModelFileError(
            path, f"{label} barycentric coordinates of landmark {tuple(int(i) for i in worst)} sum to {sums[worst]:.4f}, expected 1; the file is corrupt."
        )
    return array


def _from_deca(path: Path, content: Mapping[str, Any], n_faces: int | None) -> LandmarkEmbedding:
    _require(path, content, _DECA_KEYS, "DECA's landmark_embedding.npy")
    return LandmarkEmbedding(
        static_faces=_faces(path, "static", content["static_lmk_faces_idx"], (N_STATIC,), n_faces),
        static_bary=_bary(path, "static", content["static_lmk_bary_coords"], (N_STATIC, 3)),
        dynamic_faces=_faces(path, "dynamic", content["dynamic_lmk_faces_idx"], (N_YAW_BINS, N_CONTOUR), n_faces),
        dynamic_bary=_bary(path, "dynamic", content["dynamic_lmk_bary_coords"], (N_YAW_BINS, N_CONTOUR, 3)),
        full_faces=_faces(path, "full", content["full_lmk_faces_idx"], (N_FULL,), n_faces),
        full_bary=_bary(path, "full", content["full_lmk_bary_coords"], (N_FULL, 3)),
        source=str(path),
    )


def _from_pair(static_path: Path, dynamic_path: Path, n_faces: int | None) -> LandmarkEmbedding:
    static = _read_dict(static_path)
    _require(static_path, static, _PAIR_KEYS, "flame_static_embedding.pkl")
    dynamic = _read_dict(dynamic_path)
    _require(dynamic_path, dynamic, _PAIR_KEYS, "flame_dynamic_embedding.npy")
    static_faces = _faces(static_path, "static", static["lmk_face_idx"], (N_STATIC,), n_faces)
    static_bary = _bary(static_path, "static", static["lmk_b_coords"], (N_STATIC, 3))
    dynamic_faces = _faces(dynamic_path, "dynamic", dynamic["lmk_face_idx"], (N_YAW_BINS, N_CONTOUR), n_faces)
    dynamic_bary = _bary(dynamic_path, "dynamic", dynamic["lmk_b_coords"], (N_YAW_BINS, N_CONTOUR, 3))
    return LandmarkEmbedding(
        static_faces=static_faces,
        static_bary=static_bary,
        dynamic_faces=dynamic_faces,
        dynamic_bary=dynamic_bary,
        full_faces=np.concatenate([dynamic_faces[0], static_faces]),
        full_bary=np.concatenate([dynamic_bary[0], static_bary]),
        source=f"{static_path} + {dynamic_path}",
    )


def _partner(path: Path, name: str, given: Path | None) -> Path:
    partner = given if given is not None else path.parent / name
    if not partner.is_file():
        raise ModelFileError(
            partner, f"file not found; {path.name} needs its partner {name} (pass dynamic_path= or put it next to {path.name})."
        )
    return partner


def load_landmark_embedding(
    path: str | Path, dynamic_path: str | Path | None = None, n_faces: int | None = None
) -> LandmarkEmbedding:
    """Load DECA's ``landmark_embedding.npy`` or RingNet's static/dynamic pair.

    Args:
        path: ``landmark_embedding.npy``, ``flame_static_embedding.pkl`` or
            ``flame_dynamic_embedding.npy``. For the pair, the other file is looked up next to
            ``path`` by its standard name unless given.
        dynamic_path: the partner of a RingNet file given as ``path`` (static or dynamic,
            whichever ``path`` is not).
        n_faces: the mesh's face count; every face index must be below it.

    Returns:
        :class:`LandmarkEmbedding`: triangle indices (int64) and barycentric coordinates
        (float64) of the 51 static landmarks, the ``(79, 17)`` yaw-dependent contour table and
        the fixed 68.

    Raises:
        ModelFileError: a missing file or partner, a file of another kind, wrong shapes, face
            indices outside the mesh, or barycentric rows that are negative or do not sum to 1.
    """
    path = Path(path)
    partner = None if dynamic_path is None else Path(dynamic_path)
    if not path.is_file():
        raise ModelFileError(path, "file not found; download DECA's landmark_embedding.npy (or FLAME's landmark embeddings) or check the path.")
    if path.suffix.lower() == ".pkl":
        return _from_pair(path, _partner(path, DYNAMIC_FILE, partner), n_faces)
    content = _read_dict(path)
    if "static_lmk_faces_idx" in content:
        return _from_deca(path, content, n_faces)
    if all(key in content for key in _PAIR_KEYS):
        return _from_pair(_partner(path, STATIC_FILE, partner), path, n_faces)
    raise ModelFileError(
        path,
        f"has keys {sorted(content)}, neither DECA's embedding (static_lmk_faces_idx ...) nor RingNet's "
        "(lmk_face_idx, lmk_b_coords); is this a landmark embedding file?",
    )
