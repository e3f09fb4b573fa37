"""The resumable state of a texture-space build: what lives where under its output folder.

::

    DIR/
      build.json                 settings that must not change between reruns
      landmarks/<name>.npy       the 68 landmarks of each photo (original photo pixels), found
                                 once and reused by every later round and rerun (with
                                 --from-fits: the fit's detected landmarks)
      round_00/
        photos/<name>.json       per photo: "used" or "skipped" with the reason (written last)
        fits/<name>.npz          fitted parameters (params.npz names) + fit errors (round 0 with
                                 --from-fits: the flamefit fit parameters, resized to the scene)
        unwraps/<name>.npz       albedo (H, W, 3) and confidence (H, W), float16
        texture_space.npz        the round's space (FLAME_texture.npz layout)
        report.json              the round's figures (written last: the round is finished)
      round_01/ ...
      rounds.json, summary.txt   all finished rounds
      texture_space.npz          the last finished round's space

Every file is written atomically (a temporary name, then a rename), and a photo's ``.json`` is
written after its ``.npz`` files, so a crash never leaves a record that looks finished: a rerun
redoes exactly the photos without a record and the rounds without a ``report.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flamefit.utils import UsageError, write_json
from flamefit.utils import write_npz

SETTINGS_NAME = "build.json"
FIXED_SETTINGS = ("resolution", "components", "model", "camera", "bootstrap", "init_space", "seed", "from_fits")
"""Settings a rerun must share with the run that made the folder (others may change)."""


@dataclass(frozen=True)
class BuildFolder:
    """Paths of the state of one build under ``root``."""

    root: Path

    def round_dir(self, round_index: int) -> Path:
        return self.root / f"round_{round_index:02d}"

    def photo_record(self, round_index: int, name: str) -> Path:
        return self.round_dir(round_index) / "photos" / f"{name}.json"

    def fit_file(self, round_index: int, name: str) -> Path:
        return self.round_dir(round_index) / "fits" / f"{name}.npz"

    def unwrap_file(self, round_index: int, name: str) -> Path:
        return self.round_dir(round_index) / "unwraps" / f"{name}.npz"

    def space_file(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "texture_space.npz"

    def round_report(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "report.json"

    def landmarks_file(self, name: str) -> Path:
        return self.root / "landmarks" / f"{name}.npy"

    @property
    def settings_file(self) -> Path:
        return self.root / SETTINGS_NAME

    def finished_round(self, round_index: int) -> dict | None:
        """The round's report when the round is finished (report and space present), else None."""
        report = read_json(self.round_report(round_index))
        if report is None or not self.space_file(round_index).is_file():
            return None
        return report


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when missing or unreadable (a crash mid-write is not
    possible with atomic writes, but a hand-edited file may be broken)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def check_settings(folder: BuildFolder, settings: dict) -> None:
    """Record ``settings`` in a new folder, or check that a rerun uses the same fixed ones.

    Raises:
        UsageError: a fixed setting differs from the one the folder was built with; the
            message names it and says what to do.
    """
    folder.root.mkdir(parents=True, exist_ok=True)
    existing = read_json(folder.settings_file)
    if existing is not None:
        changed = [key for key in FIXED_SETTINGS if str(existing.get(key)) != str(settings.get(key))]
        if changed:
            details = ", ".join(f"--{key.replace('_', '-')} was {existing.get(key)!r}, now {settings.get(key)!r}"
                                for key in changed)
            raise UsageError(f"{folder.root} holds a build made with other settings ({details}); rerun "
                             "with the earlier settings to resume it, or choose a new --out (or delete "
                             "the folder) to start over")
        return
    write_json(folder.settings_file, settings)


def save_unwrap(path: Path, albedo: np.ndarray, confidence: np.ndarray, **extra) -> Path:
    """Write one photo's ``albedo (H, W, 3)`` and ``confidence (H, W)`` as float16 (atomic)."""
    return write_npz(path, albedo=np.asarray(albedo, dtype=np.float16),
                     confidence=np.asarray(confidence, dtype=np.float16), **extra)


def load_unwrap(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(albedo (H, W, 3) float32, confidence (H, W) float32)`` of one photo."""
    with np.load(path, allow_pickle=False) as data:
        return data["albedo"].astype(np.float32), data["confidence"].astype(np.float32)


def write_record(folder: BuildFolder, round_index: int, name: str, record: dict) -> Path:
    """Write a photo's record (its status for the round); call after its data files."""
    return write_json(folder.photo_record(round_index, name), record)
