"""Read and write linear albedo spaces in the official FLAME texture layouts.

Two layouts exist on disk, both BGR:

* ``FLAME_texture.npz``: ``mean (H, W, 3)`` and ``tex_dir (H, W, 3, K)``, values 0-255, plus
  ``vt (T, 2)`` and ``ft (F, 3)``.
* ``FLAME_albedo_from_BFM.npz``: ``MU (H * W * 3,)`` and ``PC (H * W * 3, K)``, values 0-1,
  flattened in ``(H, W, 3)`` order with ``H == W``.

In memory (:class:`flamefit.flame.model_data.TextureSpace`) the space is always RGB in [0, 1], float32,
image rows top to bottom. Spaces built by this project are written in the ``FLAME_texture.npz``
layout, with their metadata as extra ``meta_<name>`` keys, so any reader of the official file
reads them too. Every file is read with ``allow_pickle=False``: a texture file never needs
pickle.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from flamefit.utils import write_npz
from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_data import TextureSpace

META_PREFIX = "meta_"
"""Prefix of the keys that hold :attr:`TextureSpace.metadata` entries in a saved ``.npz``."""

_FLAME_KEYS = ("mean", "tex_dir")
_BFM_KEYS = ("MU", "PC")


def _metadata_arrays(path: Path, metadata: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Turn metadata values into plain (non-object) arrays stored under ``meta_<name>``."""
    arrays = {}
    for name, value in metadata.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise ModelFileError(
                path,
                f"metadata entry {name!r} ({type(value).__name__}) cannot be stored without "
                "pickle; pass numbers, strings or numeric arrays.",
            )
        arrays[META_PREFIX + str(name)] = array
    return arrays


def _metadata_value(array: np.ndarray) -> Any:
    """A 0-d array becomes a Python scalar; anything else stays an array."""
    return array.item() if array.ndim == 0 else array


def save_texture_space(
    path: str | Path,
    mean: np.ndarray,
    basis: np.ndarray,
    vt: np.ndarray | None = None,
    ft: np.ndarray | None = None,
    metadata: Mapping[str, Any] | None = None,
    compressed: bool = False,
) -> Path:
    """Write a texture space in the official ``FLAME_texture.npz`` layout, atomically.

    Args:
        path: destination file (written as given; ``.npz`` is the customary suffix).
        mean: ``(H, W, 3)`` RGB mean albedo in [0, 1], image rows top to bottom.
        basis: ``(H, W, 3, K)`` RGB albedo change per unit coefficient.
        vt: optional ``(T, 2)`` texture coordinates (OBJ convention) stored as ``vt``.
        ft: optional ``(F, 3)`` texture-coordinate indices stored as ``ft``.
        metadata: optional numbers, strings or numeric arrays (``n_photos``,
            ``explained_variance``, ``round`` ...) stored as ``meta_<name>`` keys.
        compressed: deflate the arrays (smaller, slower to load; for shipped files).

    Returns:
        The path written. On disk ``mean`` and ``tex_dir`` are float32 BGR scaled to 0-255, as
        in the official file. The file is written to a temporary name in the same folder and
        then renamed, so a crash never leaves a half-written space behind.

    Raises:
        ModelFileError: the arrays have the wrong shapes, hold NaN/inf, or metadata cannot be
            stored without pickle.
    """
    path = Path(path)
    mean = np.asarray(mean)
    basis = np.asarray(basis)
    if mean.ndim != 3 or mean.shape[2] != 3:
        raise ModelFileError(path, f"mean has shape {mean.shape}, expected (H, W, 3) RGB; pass an RGB image.")
    if basis.ndim != 4 or basis.shape[:3] != mean.shape:
        raise ModelFileError(
            path, f"basis has shape {basis.shape}, expected {mean.shape + ('K',)} to match the mean."
        )
    if not (np.isfinite(mean).all() and np.isfinite(basis).all()):
        raise ModelFileError(path, "mean or basis holds NaN or infinite values; fix the space before saving.")
    arrays: dict[str, np.ndarray] = {
        "mean": np.ascontiguousarray(mean[:, :, ::-1], dtype=np.float32) * np.float32(255.0),
        "tex_dir": np.ascontiguousarray(basis[:, :, ::-1, :], dtype=np.float32) * np.float32(255.0),
    }
    if vt is not None:
        arrays["vt"] = np.asarray(vt)
    if ft is not None:
        arrays["ft"] = np.asarray(ft)
    arrays.update(_metadata_arrays(path, metadata or {}))

    return write_npz(path, compressed=compressed, **arrays)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` read without pickle, or one clear error."""
    if not path.is_file():
        raise ModelFileError(path, "file not found; download it from the FLAME website or check the path.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise ModelFileError(
                path, "holds pickled objects, which a texture file never needs; re-save it with plain arrays."
            ) from error
        raise ModelFileError(path, f"is not a readable .npz ({error}); download it again.") from error
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(path, f"is not a readable .npz ({error}); the file may be truncated, download it again.") from error


def _check_finite(path: Path, mean: np.ndarray, basis: np.ndarray) -> None:
    if not (np.isfinite(mean).all() and np.isfinite(basis).all()):
        raise ModelFileError(path, "mean or basis holds NaN or infinite values; the file is corrupt, download it again.")


def _from_flame_layout(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``mean (H, W, 3)``, ``tex_dir (H, W, 3, K)`` BGR 0-255 -> RGB [0, 1] float32."""
    mean, tex_dir = arrays.pop("mean"), arrays.pop("tex_dir")
    if mean.ndim != 3 or mean.shape[2] != 3:
        raise ModelFileError(path, f"mean has shape {mean.shape}, expected (H, W, 3); is this FLAME_texture.npz?")
    if tex_dir.ndim != 4 or tex_dir.shape[:3] != mean.shape:
        raise ModelFileError(
            path, f"tex_dir has shape {tex_dir.shape}, expected {mean.shape + ('K',)} to match mean; the file is inconsistent."
        )
    scale = np.float32(1.0 / 255.0)
    mean_rgb = np.ascontiguousarray(mean[:, :, ::-1], dtype=np.float32) * scale
    basis_rgb = np.ascontiguousarray(tex_dir[:, :, ::-1, :], dtype=np.float32)
    basis_rgb *= scale
    return mean_rgb, basis_rgb


def _from_bfm_layout(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``MU (H*W*3,)``, ``PC (H*W*3, K)`` BGR 0-1 -> ``(H, W, 3)``, ``(H, W, 3, K)`` RGB float32."""
    mu, pc = arrays.pop("MU"), arrays.pop("PC")
    mu = mu.reshape(-1) if mu.ndim == 2 and 1 in mu.shape else mu
    if mu.ndim != 1 or mu.shape[0] % 3:
        raise ModelFileError(path, f"MU has shape {mu.shape}, expected (H*W*3,); is this FLAME_albedo_from_BFM.npz?")
    side = int(round(np.sqrt(mu.shape[0] // 3)))
    if side * side * 3 != mu.shape[0]:
        raise ModelFileError(path, f"MU has {mu.shape[0]} values, not 3 * H * H for a square texture; the file is inconsistent.")
    if pc.ndim != 2 or pc.shape[0] != mu.shape[0]:
        raise ModelFileError(
            path, f"PC has shape {pc.shape}, expected ({mu.shape[0]}, K) to match MU; the file is inconsistent."
        )
    mean_rgb = np.ascontiguousarray(mu.reshape(side, side, 3)[:, :, ::-1], dtype=np.float32)
    basis_rgb = np.ascontiguousarray(pc.reshape(side, side, 3, pc.shape[1])[:, :, ::-1, :], dtype=np.float32)
    return mean_rgb, basis_rgb


def load_texture_space(path: str | Path) -> TextureSpace:
    """Read ``FLAME_texture.npz``, ``FLAME_albedo_from_BFM.npz`` or a space this project saved.

    Args:
        path: the ``.npz`` file.

    Returns:
        :class:`TextureSpace` with ``mean (H, W, 3)`` and ``basis (H, W, 3, K)`` as float32 RGB
        in [0, 1] (per unit coefficient for the basis), ``vt``/``ft`` when the file has them,
        ``meta_<name>`` keys and any other extra keys (e.g. BFM's ``specMU``) in ``metadata``.

    Raises:
        ModelFileError: missing or unreadable file, neither layout's keys present, or shapes
            that do not agree.
    """
    path = Path(path)
    arrays = _read_npz(path)
    if all(key in arrays for key in _FLAME_KEYS):
        mean, basis = _from_flame_layout(path, arrays)
    elif all(key in arrays for key in _BFM_KEYS):
        mean, basis = _from_bfm_layout(path, arrays)
    else:
        raise ModelFileError(
            path,
            f"has keys {sorted(arrays)}, but a texture space needs 'mean' and 'tex_dir' (FLAME_texture.npz) "
            "or 'MU' and 'PC' (FLAME_albedo_from_BFM.npz); is this a texture space file?",
        )
    _check_finite(path, mean, basis)
    vt, ft = arrays.pop("vt", None), arrays.pop("ft", None)
    if vt is not None and (vt.ndim != 2 or vt.shape[1] != 2):
        raise ModelFileError(path, f"vt has shape {vt.shape}, expected (T, 2); the file is inconsistent.")
    if ft is not None and (ft.ndim != 2 or ft.shape[1] != 3):
        raise ModelFileError(path, f"ft has shape {ft.shape}, expected (F, 3); the file is inconsistent.")
    if vt is not None and ft is not None and ft.size and (ft.min() < 0 or ft.max() >= vt.shape[0]):
        raise ModelFileError(
            path, f"ft indexes texture coordinate {int(ft.max())} but vt has only {vt.shape[0]}; the file is inconsistent."
        )
    metadata = {
        (name[len(META_PREFIX):] if name.startswith(META_PREFIX) else name): _metadata_value(value)
        for name, value in arrays.items()
    }
    return TextureSpace(
        mean=mean,
        basis=basis,
        vt=None if vt is None else vt.astype(np.float64),
        ft=None if ft is None else ft.astype(np.int64),
        source=str(path),
        metadata=metadata,
    )
