"""Read the pickled FLAME files safely, with or without chumpy.

The FLAME files (``generic_model.pkl``, ``flame2023.pkl``, ``FLAME_masks.pkl``,
``flame_static_embedding.pkl``) are Python-2 pickles of dicts of numpy arrays, a chumpy object
(``shapedirs``) and a scipy sparse matrix (``J_regressor``). Plain :func:`pickle.load` would need
chumpy, which no longer imports on modern NumPy, and would run any code a tampered file names.

:func:`load_pickle` instead resolves only an allow-list of globals:

* numpy's array, dtype and scalar reconstruction (``numpy.core.*`` and ``numpy._core.*`` are
  treated alike, whichever NumPy is installed);
* builtin containers (``set``, ``frozenset``, ``collections.OrderedDict``, ...), and the
  ``copyreg`` / ``_codecs`` helpers that Python-2 and protocol-2 pickles use for plain objects
  and bytes;
* any ``chumpy.*`` class, read as a placeholder and turned into the ``ndarray`` held in its
  pickled state's ``x`` (chumpy pickles ``Ch`` objects as their ``__dict__`` minus caches);
* scipy's CSC / CSR / COO sparse matrices under any of their historical module paths, turned into
  dense ``ndarray`` from their pickled ``data`` / ``indices`` / ``indptr`` (or ``row`` / ``col``)
  and ``_shape``;
* with ``allow_torch=True`` only, torch's tensor reconstruction (``_rebuild_tensor_v2`` and
  ``storage._load_from_bytes``, whose inner payload goes through ``torch.load(weights_only=True)``),
  needed by DECA's ``landmark_embedding.npy``; tensors come back as ``ndarray``.

Every other class or callable (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) is
refused with a :class:`~flamefit.flame.errors.ModelFileError` before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import importlib
import io
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from flamefit.flame.errors import ModelFileError

_ENCODING = "latin1"
"""Python-2 ``str`` objects (numpy's raw array bytes among them) decode byte for byte."""

_SPARSE_FORMATS = {"csc", "csr", "coo"}


def _numpy_core() -> tuple[Any, Any]:
    """``numpy._core`` on NumPy 2, ``numpy.core`` on NumPy 1."""
    try:
        return importlib.import_module("numpy._core.multiarray"), importlib.import_module("numpy._core.numeric")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray"), importlib.import_module("numpy.core.numeric")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The numpy objects a pickled array, dtype or scalar may name, keyed by canonical name."""
    multiarray, numeric = _numpy_core()
    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
    }


_BUILTIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


def _canonical_name(module: str, name: str) -> tuple[str, str]:
    """Map Python-2 names to Python 3 ones and ``numpy.core`` to ``numpy._core``."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core"):]
    return module, name


class PickledObject:
    """Placeholder for a chumpy or scipy-sparse object read without its library.

    Subclasses carry ``pickled_class`` (``"chumpy.ch.Ch"``); the unpickler stores the pickled
    state in ``state`` and :func:`plain_arrays` later turns the placeholder into an ndarray.
    """

    pickled_class = "object"
    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "PickledObject":
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)


class PickledChumpy(PickledObject):
    """A ``chumpy.*`` object; its value is ``state['x']``."""


class PickledSparse(PickledObject):
    """A ``scipy.sparse`` CSC/CSR/COO matrix; ``fmt`` says which."""

    fmt = "csc"


_placeholder_types: dict[tuple[str, str], type] = {}


def _placeholder(base: type, module: str, name: str, **attributes: Any) -> type:
    """One placeholder class per pickled class name, so messages can name the original."""
    key = (module, name)
    if key not in _placeholder_types:
        _placeholder_types[key] = type(
            f"Pickled_{name}", (base,), {"pickled_class": f"{module}.{name}", **attributes}
        )
    return _placeholder_types[key]


def _sparse_format(module: str, name: str) -> str | None:
    """``"csc"`` for ``scipy.sparse.csc.csc_matrix`` and the like; None if not CSC/CSR/COO."""
    if not (module == "scipy.sparse" or module.startswith("scipy.sparse.")):
        return None
    fmt = name.split("_")[0]
    if fmt in _SPARSE_FORMATS and name in (f"{fmt}_matrix", f"{fmt}_array"):
        return fmt
    return None


def _refusal(path: Path | None, module: str, name: str) -> ModelFileError:
    return ModelFileError(
        path,
        f"refusing to load class {module}.{name}: FLAME files contain only arrays; "
        "this file may be malicious or not a FLAME file.",
    )


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals described in this module.

    Args:
        file: binary stream positioned at the pickle.
        path: the file the stream came from, named in every error.
        allow_torch: also allow torch's tensor reconstruction (DECA's embedding file).
        real_chumpy: resolve ``chumpy.*`` to the installed chumpy classes instead of
            placeholders (used by :func:`load_pickle_with_chumpy`).
    """

    def __init__(self, file: BinaryIO, path: Path | None, allow_torch: bool = False, real_chumpy: bool = False):
        super().__init__(file, encoding=_ENCODING)
        self.path = path
        self.allow_torch = allow_torch
        self.real_chumpy = real_chumpy
        self._numpy = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        canonical = _canonical_name(module, name)
        if canonical in self._numpy:
            return self._numpy[canonical]
        if canonical in _BUILTIN_GLOBALS:
            return _BUILTIN_GLOBALS[canonical]
        if canonical == ("copyreg", "_reconstructor"):
            return self._reconstructor
        if canonical == ("_codecs", "encode"):
            return self._latin1_encode
        if canonical == ("builtins", "bytes"):
            return self._bytes
        if module == "chumpy" or module.startswith("chumpy."):
            if self.real_chumpy:
                return getattr(importlib.import_module(module), name)
            return _placeholder(PickledChumpy, module, name)
        fmt = _sparse_format(module, name)
        if fmt is not None:
            return _placeholder(PickledSparse, module, name, fmt=fmt)
        if self.allow_torch:
            torch_global = self._torch_global(canonical)
            if torch_global is not None:
                return torch_global
        raise _refusal(self.path, *canonical)

    def persistent_load(self, pid: Any) -> Any:
        raise ModelFileError(
            self.path,
            "is not a readable pickle (it asks for a persistent reference, which FLAME files never hold); "
            "is this the right file, and is it complete?",
        )

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        """``copyreg._reconstructor`` limited to placeholders built on ``object`` (protocol 0/1)."""
        if isinstance(cls, type) and issubclass(cls, PickledObject) and base is object and state is None:
            return cls.__new__(cls)
        raise _refusal(self.path, "copyreg", f"_reconstructor({getattr(cls, '__name__', cls)!s})")

    def _latin1_encode(self, text: Any, encoding: str = "utf-8") -> bytes:
        """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: str -> latin-1 bytes only."""
        if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
            raise _refusal(self.path, "_codecs", f"encode(..., {encoding!r})")
        return text.encode("latin-1")

    def _bytes(self, *args: Any) -> bytes:
        """``bytes`` as protocol-2 pickles use it (``bytes()`` for b''), never ``bytes(huge_int)``."""
        if not args:
            return b""
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray, list, tuple)):
            return bytes(args[0])
        raise _refusal(self.path, "builtins", f"bytes({type(args[0]).__name__})")

    def _torch_global(self, canonical: tuple[str, str]) -> Callable[..., Any] | None:
        import torch._utils

        if canonical == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if canonical == ("torch._utils", "_rebuild_tensor"):
            return torch._utils._rebuild_tensor
        if canonical == ("torch.storage", "_load_from_bytes"):
            return _torch_storage_from_bytes
        return None


def _torch_storage_from_bytes(payload: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes`` that never runs arbitrary pickles."""
    import torch

    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


_FOREIGN_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PK\x03\x04": "a zip archive (an .npz or torch checkpoint?)",
    b"\x93NUMPY": "a .npy array file",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"%PDF": "a PDF document",
    b"<": "a web page or XML (a failed download? log in on the FLAME website and download again)",
}


def _open_existing(path: Path) -> BinaryIO:
    if not path.is_file():
        raise ModelFileError(path, "file not found; download it from the FLAME website or check the path.")
    return open(path, "rb")


def _open_checked(path: Path) -> BinaryIO:
    """Open ``path`` for unpickling; missing files and well-known non-pickle formats fail here."""
    stream = _open_existing(path)
    head = stream.read(8)
    stream.seek(0)
    for signature, kind in _FOREIGN_SIGNATURES.items():
        if head.lstrip()[: len(signature)] == signature:
            stream.close()
            raise ModelFileError(path, f"is {kind}, not a pickle; is this the right file?")
    if not head:
        stream.close()
        raise ModelFileError(path, "is empty; download the file again.")
    return stream


def unpickle_restricted(
    stream: BinaryIO, path: Path | None, allow_torch: bool = False, real_chumpy: bool = False
) -> Any:
    """Run :class:`RestrictedUnpickler` on ``stream``; every failure becomes one ModelFileError.

    Returns the raw unpickled object (placeholders and tensors not yet converted; see
    :func:`plain_arrays`).
    """
    try:
        return RestrictedUnpickler(stream, path, allow_torch=allow_torch, real_chumpy=real_chumpy).load()
    except ModelFileError:
        raise
    except EOFError as error:
        raise ModelFileError(path, "ends early (truncated pickle); download the file again.") from error
    except pickle.UnpicklingError as error:
        if "truncated" in str(error):
            raise ModelFileError(path, "ends early (truncated pickle); download the file again.") from error
        raise ModelFileError(
            path, f"is not a readable pickle ({error}); is this the right file, and is it complete?"
        ) from error
    except (
        ValueError, TypeError, AttributeError, IndexError, KeyError, ImportError,
        struct.error, UnicodeDecodeError, MemoryError, RuntimeError,
    ) as error:
        raise ModelFileError(
            path, f"could not be unpickled ({type(error).__name__}: {error}); the file is corrupt, download it again."
        ) from error


def _chumpy_array(obj: PickledChumpy, path: Path | None, convert: Callable[[Any], Any]) -> np.ndarray:
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]
    if not isinstance(state, dict) or "x" not in state:
        raise ModelFileError(
            path,
            f"holds a chumpy {obj.pickled_class} object without a stored value 'x'; only plain chumpy "
            "arrays can be read without chumpy: install chumpy or use a converted .npz.",
        )
    return np.asarray(convert(state["x"]))


def _sparse_array(obj: PickledSparse, path: Path | None, convert: Callable[[Any], Any]) -> np.ndarray:
    import scipy.sparse

    state = obj.state if isinstance(obj.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    try:
        shape = tuple(int(n) for n in shape)
        if obj.fmt == "coo":
            coords = state["coords"] if "coords" in state else (state["row"], state["col"])
            row, col = convert(coords[0]), convert(coords[1])
            matrix = scipy.sparse.coo_matrix((convert(state["data"]), (row, col)), shape=shape)
        else:
            constructor = scipy.sparse.csc_matrix if obj.fmt == "csc" else scipy.sparse.csr_matrix
            matrix = constructor(
                (convert(state["data"]), convert(state["indices"]), convert(state["indptr"])), shape=shape
            )
        return matrix.toarray()
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ModelFileError(
            path, f"holds a sparse matrix {obj.pickled_class} whose stored arrays are incomplete or inconsistent ({error}); download the file again."
        ) from error


def plain_arrays(obj: Any, path: Path | None = None) -> Any:
    """Replace chumpy placeholders, sparse placeholders and torch tensors by ``ndarray``.

    Walks dicts, lists, tuples and object arrays; everything else is returned unchanged.
    Real chumpy objects (from :func:`load_pickle_with_chumpy`) become ``np.asarray(obj.r)``
    and real scipy sparse matrices become dense.
    """
    seen: dict[int, Any] = {}

    def convert(item: Any) -> Any:
        key = id(item)
        if key in seen:
            return seen[key]
        if isinstance(item, PickledChumpy):
            result: Any = _chumpy_array(item, path, convert)
        elif isinstance(item, PickledSparse):
            result = _sparse_array(item, path, convert)
        elif isinstance(item, dict):
            result = type(item)() if isinstance(item, collections.OrderedDict) else {}
            seen[key] = result
            result.update((k, convert(v)) for k, v in item.items())
        elif isinstance(item, list):
            result = [convert(v) for v in item]
        elif isinstance(item, tuple):
            result = tuple(convert(v) for v in item)
        elif isinstance(item, np.ndarray) and item.dtype == object:
            result = np.empty(item.shape, dtype=object)
            for index in np.ndindex(item.shape):
                result[index] = convert(item[index])
        elif type(item).__module__.split(".")[0] == "chumpy":
            result = np.asarray(item.r)
        elif type(item).__module__.split(".")[0] == "scipy" and hasattr(item, "toarray"):
            result = item.toarray()
        elif type(item).__module__.split(".")[0] == "torch" and hasattr(item, "detach"):
            result = item.detach().cpu().numpy()
        else:
            result = item
        seen[key] = result
        return result

    return convert(obj)


def load_pickle(path: str | Path, allow_torch: bool = False) -> Any:
    """Load a (Python-2 or 3) FLAME pickle without chumpy and without running foreign code.

    Args:
        path: the ``.pkl`` file.
        allow_torch: also accept pickled torch tensors (returned as ``ndarray``).

    Returns:
        The unpickled object, with chumpy objects, scipy sparse matrices and tensors replaced by
        ``ndarray`` (see :func:`plain_arrays`).

    Raises:
        ModelFileError: missing, truncated or non-pickle file; a class outside the allow-list;
            a chumpy object with no stored value.
    """
    path = Path(path)
    with _open_checked(path) as stream:
        raw = unpickle_restricted(stream, path, allow_torch=allow_torch)
    return plain_arrays(raw, path)


def chumpy_available() -> bool:
    """True when ``import chumpy`` works (it fails on NumPy >= 1.24 without patches)."""
    try:
        importlib.import_module("chumpy")
    except Exception:
        return False
    return True


def load_pickle_with_chumpy(path: str | Path) -> Any:
    """Load a FLAME pickle with the installed chumpy, then turn chumpy objects into arrays.

    Uses the same allow-list as :func:`load_pickle` (so a tampered file is still refused) but
    builds real chumpy objects, so chumpy expressions without a stored ``x`` (``ch_ops``,
    ``reordering``) are evaluated by chumpy itself (``obj.r``). Requires ``import chumpy``.
    """
    path = Path(path)
    with _open_checked(path) as stream:
        raw = unpickle_restricted(stream, path, real_chumpy=True)
    return plain_arrays(raw, path)


def load_object_npy(path: str | Path, allow_torch: bool = False) -> Any:
    """Read a ``.npy`` holding a pickled object array, through the restricted unpickler.

    ``np.load(allow_pickle=True)`` would run whatever the pickle names; this reads the ``.npy``
    header itself and unpickles the payload with :class:`RestrictedUnpickler`.

    Args:
        path: the ``.npy`` file (``landmark_embedding.npy``, ``flame_dynamic_embedding.npy``).
        allow_torch: accept pickled torch tensors (DECA stores some as tensors).

    Returns:
        For a 0-d object array, its single item (usually a dict), converted by
        :func:`plain_arrays`; for any other object array, the converted array; for a plain
        numeric ``.npy``, the array itself.
    """
    path = Path(path)
    with _open_existing(path) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise ModelFileError(path, f"is not a readable .npy file ({error}); download it again.") from error
        if dtype != object:
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as error:
                raise ModelFileError(path, f"is not a readable .npy file ({error}); download it again.") from error
        raw = unpickle_restricted(stream, path, allow_torch=allow_torch)
    if not isinstance(raw, np.ndarray):
        raise ModelFileError(path, "does not hold an array after its .npy header; the file is corrupt, download it again.")
    converted = plain_arrays(raw, path)
    return converted.item() if converted.ndim == 0 else converted
