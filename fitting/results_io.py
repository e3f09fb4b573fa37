"""Atomic writes and per-image result bookkeeping (``report.json``) for resumable batch jobs.

A result folder ``OUT/<name>/`` is complete when its ``report.json`` says ``"status": "done"``;
it is written last, so a crash leaves no folder that looks finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flamefit.utils import atomic_write

REPORT_NAME = "report.json"


def _jsonable(value: Any) -> Any:
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
    """Atomically write ``data`` as indented JSON (numpy values converted)."""
    text = json.dumps(_jsonable(data), indent=2, allow_nan=True) + "\n"
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Atomically write an ``(H, W, 3|4)`` uint8 image; the format follows the suffix."""
    import imageio.v3 as iio

    path = Path(path)
    return atomic_write(path, lambda stream: iio.imwrite(stream, rgb, extension=path.suffix))


def read_report(folder: str | Path) -> dict | None:
    """The ``report.json`` of a result folder, or None if missing or unreadable."""
    try:
        return json.loads((Path(folder) / REPORT_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_done(folder: str | Path) -> bool:
    """True when the folder's report says the image was fitted (a rerun skips it)."""
    report = read_report(folder)
    return report is not None and report.get("status") == "done"
