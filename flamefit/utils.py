"""Helpers every layer may use: atomic file writes and lazy package exports.

* :func:`atomic_write` / :func:`write_npz`: a temp file beside the target, then ``os.replace``.
  Readers never see a half-written file, a crash leaves the previous file (if any) intact, and
  the file gets the mode the user's umask gives a new file (as ``open`` would), not
  ``mkstemp``'s private 0600. Used by every writer of the toolkit (model conversion, texture
  spaces, exports, fit results).
* :func:`lazy_getattr`: a package's public names imported from their modules on first use, so
  that ``import flamefit.fitting`` (and ``flamefit --help``) stays cheap.
"""

from __future__ import annotations

import importlib
import os
import tempfile
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


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through ``write(stream)`` (a binary stream) atomically; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            # mkstemp creates 0600; give the file the mode a plain open() would (readable by
            # the group and others under the usual umask: shared folders, web servers).
            os.fchmod(stream.fileno(), 0o666 & ~_umask())
            write(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_npz(path: str | Path, **arrays: Any) -> Path:
    """Atomically write arrays as an uncompressed ``.npz`` (loads with ``allow_pickle=False``)."""
    import numpy as np

    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))


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
