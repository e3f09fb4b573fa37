"""Load, validate and convert FLAME-format model files.

Reads ``generic_model.pkl`` (FLAME 2020), ``flame2023.pkl`` (FLAME 2023), the project's open
demo head and the plain ``.npz`` written by :func:`save_flame_npz`. Every array is checked
(keys, shapes, vertex counts, joint tree, finite values, skinning weights) so a wrong or damaged
file fails here with one clear :class:`~flamefit.flame.errors.ModelFileError` instead of deep inside the
LBS layer.

On-disk keys (the pickle's and the ``.npz``'s): ``v_template (V, 3)``, ``f (F, 3)`` integers,
``shapedirs (V, 3, S + E)`` identity columns then expression columns, ``posedirs
(V, 3, 9 * (J - 1))``, ``J_regressor (J, V)`` (scipy sparse in the pickle, dense in the
``.npz``), ``weights (V, J)``, ``kintree_table (2, J)`` (row 0 parents, root parent ``2**32 - 1``;
row 1 joint ids), optional ``n_shape`` / ``n_expression`` (the split of ``shapedirs``; FLAME's
own files omit them and use 300 + 100), optional ``exprdirs (V, 3, E)`` (the expression columns
stored apart, e.g. at another precision; ``shapedirs`` then holds the identity columns), and extras (``J``, ``bs_style``, ``bs_type``,
``model_name`` ...).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from flamefit.utils import write_npz
from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_data import FlameModelData
from flamefit.flame.pickle_io import chumpy_available, load_pickle, load_pickle_with_chumpy

REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
"""Keys every FLAME-format model file must hold."""

SPLIT_KEYS = ("n_shape", "n_expression")
"""Optional keys giving the identity/expression split of ``shapedirs``."""

FLAME_N_SHAPE = 300
FLAME_N_EXPRESSION = 100
ROOT_PARENT_UINT32 = np.iinfo(np.uint32).max
"""The root's parent in FLAME's ``kintree_table`` (``-1`` stored as uint32)."""

_WEIGHT_SUM_TOLERANCE = 1e-3
_DEMO_MARKER = "demo"


def _read_raw(path: Path) -> dict[str, Any]:
    """The file's top-level dict, arrays only (chumpy/sparse already converted)."""
    if not path.is_file():
        raise ModelFileError(
            path, "file not found; download generic_model.pkl or flame2023.pkl from the FLAME website, or check the path."
        )
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw: Any = {name: npz[name] for name in npz.files}
        except ValueError as error:
            raise ModelFileError(path, f"is not a plain-array .npz ({error}); convert the model again with convert_flame_model.") from error
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ModelFileError(path, f"is not a readable .npz ({error}); the file may be truncated, convert the model again.") from error
    elif chumpy_available():
        raw = load_pickle_with_chumpy(path)
    else:
        raw = load_pickle(path)
    if not isinstance(raw, dict):
        raise ModelFileError(
            path, f"holds a {type(raw).__name__}, not a dict of arrays; is this generic_model.pkl or flame2023.pkl?"
        )
    return raw


def _as_array(path: Path, name: str, value: Any, ndim: int, kind: str = "f") -> np.ndarray:
    """``value`` as an ndarray of ``ndim`` dimensions, float64 (``kind='f'``) or int64 (``'i'``)."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ModelFileError(path, f"{name} holds {array.dtype} values, expected numbers; the file is corrupt or not a FLAME model.")
    if array.ndim != ndim:
        raise ModelFileError(path, f"{name} has shape {array.shape}, expected {ndim} dimensions; the file is corrupt or not a FLAME model.")
    if kind == "i":
        if array.dtype.kind not in "biu":
            raise ModelFileError(path, f"{name} holds {array.dtype} values, expected integers; the file is corrupt or not a FLAME model.")
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ModelFileError(path, f"{name} holds NaN or infinite values; the file is corrupt, download it again.")
    return array


def _expect_shape(path: Path, name: str, array: np.ndarray, expected: tuple[Any, ...]) -> None:
    """Check ``array.shape`` against ``expected`` (None entries match anything)."""
    if len(array.shape) != len(expected) or any(e is not None and a != e for a, e in zip(array.shape, expected)):
        shown = tuple("*" if e is None else e for e in expected)
        raise ModelFileError(
            path, f"{name} has shape {array.shape}, expected {shown}; the arrays disagree, the file is corrupt or mixes models."
        )


def _parents_from_kintree(path: Path, kintree: np.ndarray) -> np.ndarray:
    """``(J,)`` int64 parents from ``kintree_table (2, J)``; the root's parent becomes -1."""
    if kintree.shape[0] != 2 or kintree.shape[1] < 1:
        raise ModelFileError(path, f"kintree_table has shape {kintree.shape}, expected (2, J); the file is corrupt.")
    n_joints = kintree.shape[1]
    if not np.array_equal(kintree[1], np.arange(n_joints)):
        raise ModelFileError(
            path, f"kintree_table row 1 is {kintree[1].tolist()}, expected joint ids 0..{n_joints - 1} in order; the file is corrupt."
        )
    parents = kintree[0].astype(np.int64)
    parents[(parents == ROOT_PARENT_UINT32) | (parents == -1)] = -1
    later = np.arange(n_joints)
    if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= later[1:]):
        raise ModelFileError(
            path,
            f"kintree_table parents {parents.tolist()} do not form a tree rooted at joint 0 with each parent "
            "before its child (FLAME: [-1, 0, 1, 1, 1]); the file is corrupt.",
        )
    return parents


def _split_counts(path: Path, raw: Mapping[str, Any], n_columns: int) -> tuple[int, int]:
    """How many ``shapedirs`` columns are identity and how many expression."""
    if all(key in raw for key in SPLIT_KEYS):
        try:
            n_shape, n_expression = (int(np.asarray(raw[key]).item()) for key in SPLIT_KEYS)
        except (TypeError, ValueError) as error:
            raise ModelFileError(path, f"n_shape / n_expression are not integers ({error}); the file is corrupt.") from error
        if n_shape < 0 or n_expression < 0 or n_shape + n_expression != n_columns:
            raise ModelFileError(
                path,
                f"n_shape ({n_shape}) + n_expression ({n_expression}) does not equal the {n_columns} columns of shapedirs; the file is corrupt.",
            )
        return n_shape, n_expression
    if n_columns == FLAME_N_SHAPE + FLAME_N_EXPRESSION:
        return FLAME_N_SHAPE, FLAME_N_EXPRESSION
    hint = (
        "this looks like an expression-only file; use generic_model.pkl / flame2023.pkl"
        if n_columns == FLAME_N_EXPRESSION
        else "use generic_model.pkl / flame2023.pkl, or give the split with n_shape and n_expression keys"
    )
    raise ModelFileError(
        path, f"shapedirs has {n_columns} columns, expected 400 (300 identity + 100 expression): {hint}."
    )


def _plain_extra(value: Any) -> Any:
    """0-d arrays (strings, numbers) become Python scalars; other values stay as they are."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def validate_model_arrays(path: str | Path, raw: Mapping[str, Any]) -> FlameModelData:
    """Check a FLAME-format dict of arrays and build :class:`FlameModelData` from it.

    Args:
        path: the file the dict came from (named in errors and kept as ``source``).
        raw: the file's keys (see the module docstring), with sparse/chumpy values already
            turned into ndarrays.

    Raises:
        ModelFileError: a missing key, a wrong shape, vertex counts that disagree, faces out of
            range, a bad joint tree, weights whose rows do not sum to 1, or NaN/inf values.
    """
    path = Path(path)
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ModelFileError(
            path, f"is missing the keys {missing}; is this generic_model.pkl or flame2023.pkl (not a landmark or mask file)?"
        )
    v_template = _as_array(path, "v_template", raw["v_template"], 2)
    _expect_shape(path, "v_template", v_template, (None, 3))
    n_vertices = v_template.shape[0]
    faces = _as_array(path, "f", raw["f"], 2, kind="i")
    _expect_shape(path, "f", faces, (None, 3))
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ModelFileError(
            path, f"f refers to vertex {int(faces.max())} but v_template has {n_vertices} vertices; the file is corrupt or mixes models."
        )
    parents = _parents_from_kintree(path, _as_array(path, "kintree_table", raw["kintree_table"], 2, kind="i"))
    n_joints = parents.shape[0]
    shapedirs_all = _as_array(path, "shapedirs", raw["shapedirs"], 3)
    _expect_shape(path, "shapedirs", shapedirs_all, (n_vertices, 3, None))
    if "exprdirs" in raw:  # expression columns stored apart (another precision)
        exprdirs = _as_array(path, "exprdirs", raw["exprdirs"], 3)
        _expect_shape(path, "exprdirs", exprdirs, (n_vertices, 3, None))
        shapedirs_all = np.concatenate([shapedirs_all, exprdirs], axis=2)
    n_shape, n_expression = _split_counts(path, raw, shapedirs_all.shape[2])
    posedirs = _as_array(path, "posedirs", raw["posedirs"], 3)
    _expect_shape(path, "posedirs", posedirs, (n_vertices, 3, 9 * (n_joints - 1)))
    j_regressor = _as_array(path, "J_regressor", raw["J_regressor"], 2)
    _expect_shape(path, "J_regressor", j_regressor, (n_joints, n_vertices))
    weights = _as_array(path, "weights", raw["weights"], 2)
    _expect_shape(path, "weights", weights, (n_vertices, n_joints))
    row_sums = weights.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    if abs(row_sums[worst] - 1.0) > _WEIGHT_SUM_TOLERANCE:
        raise ModelFileError(
            path, f"skinning weights of vertex {worst} sum to {row_sums[worst]:.4f}, expected 1; the file is corrupt."
        )
    extras = {key: _plain_extra(value) for key, value in raw.items()
              if key not in REQUIRED_KEYS + SPLIT_KEYS + ("exprdirs",)}
    model_name = extras.get("model_name")
    return FlameModelData(
        v_template=v_template,
        faces=faces,
        shapedirs=np.ascontiguousarray(shapedirs_all[:, :, :n_shape]),
        exprdirs=np.ascontiguousarray(shapedirs_all[:, :, n_shape:n_shape + n_expression]),
        posedirs=posedirs,
        j_regressor=j_regressor,
        weights=weights,
        parents=parents,
        source=str(path),
        is_demo=isinstance(model_name, str) and _DEMO_MARKER in model_name.lower(),
        extras=extras,
    )


def load_flame_model(path: str | Path) -> FlameModelData:
    """Load ``generic_model.pkl``, ``flame2023.pkl``, the demo head or a converted ``.npz``.

    Pickles are read with chumpy when ``import chumpy`` works, otherwise (the usual case on
    modern NumPy) with the restricted unpickler of :mod:`flamefit.flame.pickle_io`; both refuse classes
    a FLAME file never contains. ``.npz`` files are read with ``allow_pickle=False``.

    Args:
        path: the model file.

    Returns:
        :class:`FlameModelData` in model space (metres): ``v_template (V, 3)``, ``faces (F, 3)``,
        ``shapedirs (V, 3, S)``, ``exprdirs (V, 3, E)``, ``posedirs (V, 3, 9 * (J - 1))``,
        ``j_regressor (J, V)`` dense, ``weights (V, J)``, ``parents (J,)`` with -1 for the root;
        ``is_demo`` set when ``model_name`` mentions the demo head; other keys in ``extras``.

    Raises:
        ModelFileError: the file is missing, unreadable, refused, or fails validation.
    """
    path = Path(path)
    return validate_model_arrays(path, _read_raw(path))


def _npz_extra(value: Any) -> np.ndarray | None:
    """An extra as a plain (pickle-free) array, or None when it cannot be one."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return None if array.dtype == object else array


def save_flame_npz(data: FlameModelData, path: str | Path) -> Path:
    """Write ``data`` as a plain ``.npz`` (no pickle needed to read it), atomically.

    The keys are the pickle's (``v_template``, ``f``, ``shapedirs`` with expression columns
    appended, ``posedirs``, dense ``J_regressor``, ``weights``, ``kintree_table`` with the
    root's parent as ``2**32 - 1``) plus ``n_shape`` and ``n_expression`` and the extras, so
    :func:`load_flame_model` reads back the same arrays. Extras that cannot be stored without
    pickle (``None``, nested dicts) are dropped with a warning naming them.

    Args:
        data: the model.
        path: destination ``.npz``.

    Returns:
        The path written.
    """
    path = Path(path)
    n_joints = data.n_joints
    kintree = np.stack([data.parents, np.arange(n_joints)]).astype(np.int64)
    kintree[0, kintree[0] < 0] = ROOT_PARENT_UINT32
    arrays: dict[str, np.ndarray] = {
        "v_template": data.v_template,
        "f": data.faces.astype(np.int64),
        "shapedirs": np.concatenate([data.shapedirs, data.exprdirs], axis=2),
        "posedirs": data.posedirs,
        "J_regressor": data.j_regressor,
        "weights": data.weights,
        "kintree_table": kintree.astype(np.uint32),
        "n_shape": np.asarray(data.n_shape, dtype=np.int64),
        "n_expression": np.asarray(data.n_expression, dtype=np.int64),
    }
    dropped = []
    for key, value in data.extras.items():
        if key in arrays:
            continue
        array = _npz_extra(value)
        if array is None:
            dropped.append(key)
        else:
            arrays[key] = array
    if dropped:
        warnings.warn(f"{path}: extras {dropped} cannot be stored without pickle and were left out.", stacklevel=2)
    return write_npz(path, **arrays)


def convert_flame_model(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert a FLAME pickle to the plain ``.npz`` form (validated on the way).

    Args:
        src: ``generic_model.pkl`` / ``flame2023.pkl`` (or any file :func:`load_flame_model` reads).
        dst: destination file, or a folder to write ``<src stem>.npz`` into; defaults to
            ``src`` with the suffix ``.npz``.

    Returns:
        The ``.npz`` path; ``np.load(dst, allow_pickle=False)`` reads it.
    """
    src = Path(src)
    dst = src.with_suffix(".npz") if dst is None else Path(dst)
    if dst.is_dir():  # like cp: into the folder, under the source's name
        dst = dst / src.with_suffix(".npz").name
    if dst.resolve() == src.resolve():
        raise ModelFileError(dst, "is the source file itself; choose another destination for the converted model.")
    return save_flame_npz(load_flame_model(src), dst)
