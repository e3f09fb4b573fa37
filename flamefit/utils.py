"""Helpers every layer may use: atomic file writes and lazy package exports.

* :func:`atomic_write` / :func:`write_npz`: a temp file beside the target, then ``os.replace``.
  Readers never see a half-written file, a crash leaves the previous file (if any) intact, and
  the file gets the mode the user's umask gives a new file (as ``open`` would), not
  ``mkstemp``'s private 0600. Used by every writer of the toolkit (model conversion, texture
  spaces, exports, fit results).
  :func:`write_json`, :func:`write_text` and :func:`write_image` are the same for JSON, text
  and images.
* :func:`lazy_getattr`: a package's public names imported from their modules on first use, so
  that ``import flamefit.fitting`` (and ``flamefit --help``) stays cheap.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux), since
    setting it is process-wide and not thread-safe."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits ``open()`` would give a new file: ``0o666`` less the umask."""
    return 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through ``write(stream)`` (a binary stream) atomically; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            # mkstemp creates 0600; give the file the mode a plain open() would (readable by
            # the group and others under the usual umask: shared folders, web servers).
            os.fchmod(stream.fileno(), new_file_mode())
            write(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_npz(path: str | Path, *, compressed: bool = False, **arrays: Any) -> Path:
    """Atomically write arrays as an ``.npz`` (loads with ``allow_pickle=False``).

    Unlike ``np.savez`` the archive holds no time stamps, so the same arrays always give the
    same bytes (shipped files can be rebuilt bit for bit). ``compressed``: deflate each array.
    """
    import zipfile

    import numpy as np

    def write(stream: BinaryIO) -> None:
        method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(stream, "w", compression=method) as archive:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    return atomic_write(path, write)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: dict) -> Path:
    """Atomically write ``data`` as indented JSON (numpy values and paths converted)."""
    import json

    text = json.dumps(_jsonable(data), indent=2, allow_nan=True) + "\n"
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def write_image(path: str | Path, rgb) -> Path:
    """Atomically write an ``(H, W, 3|4)`` uint8 image; the format follows the suffix."""
    import imageio.v3 as iio

    path = Path(path)
    return atomic_write(path, lambda stream: iio.imwrite(stream, rgb, extension=path.suffix))


@contextmanager
def folder_lock(folder: str | Path, name: str = ".flamefit.lock"):
    """Hold an exclusive lock on ``folder`` (a ``name`` file in it) for a run that writes there.

    Raises:
        UsageError: another process holds it (its pid is named), so two runs never write the same
            output folder at once. Where the system has no ``fcntl`` (Windows) nothing is locked.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = folder / name
    stream = open(path, "a+")
    try:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            stream.seek(0)
            holder = stream.read().strip() or "another process"
            raise UsageError(f"{folder}: another flamefit run ({holder}) is writing to this folder; "
                             "wait for it to finish or choose another output folder") from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"pid {os.getpid()}")
        stream.flush()
        yield
    finally:
        stream.close()


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` serving ``exports`` (public name -> module path)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class UsageError(ValueError):
    """A bad option or environment (an unknown device, CUDA asked for but absent, an option out
    of range, an output that already exists): the command line prints the message as one line
    and exits with status 2. The message names the option and says what to do."""
