"""Atomic file writes: a temp file beside the target, then ``os.replace``.

Readers never see a half-written file, and a crash leaves the previous file (if any) intact.
Used by every writer of the toolkit (model conversion, texture spaces, exports, fit results).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through ``write(stream)`` (a binary stream) atomically; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_npz(path: str | Path, **arrays: Any) -> Path:
    """Atomically write arrays as an uncompressed ``.npz`` (loads with ``allow_pickle=False``)."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))
