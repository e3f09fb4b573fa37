"""The fit-result schema: one photo's result folder ``OUT/<id>/``, read and written only here.

Every reader and writer of fit results (``flamefit fit``, ``build-texture-space --from-fits``,
and later the web page, regressor training and scale-out) uses these names:

=====================  =========================================================================
file                   content
=====================  =========================================================================
``params.npz``         :data:`PARAM_KEYS` (one photo's, no batch axis) + ``camera_type``,
                       ``resolution`` (the crop side the camera refers to)
``mesh.obj``           the head in model space (metres) + ``mesh.mtl`` + ``mesh.png`` albedo
``mesh.glb``           the same head and albedo in one self-contained binary glTF (y up, metres)
``camera.npz``         OpenCV ``K (3,3)``, ``R (3,3)``, ``t (3,)`` for the original photo's
                       pixels, ``image_size (H, W)``
``landmarks.npz``      ``detected``, ``fitted`` ``(68, 2)`` original-photo pixel indices;
                       ``detected_crop``, ``fitted_crop`` the same in crop pixel indices;
                       with MediaPipe's points also ``detected_dense``, ``fitted_dense``
                       ``(478, 2)`` original-photo pixels (fitted NaN where unused) and
                       ``dense_used (478,)`` bool
``overlay.png``        the render over the photo
``sheet.png``          input · landmarks · render · shape · overlay
``progress.gif``       optional: the full stage's progress
``report.json``        written last; ``status`` ``"done"`` marks the folder complete (below)
=====================  =========================================================================

``report.json`` always holds :data:`REPORT_SCHEMA_VERSION` as ``schema_version``, ``status``
(``"done"`` or ``"failed"``), ``id``, ``input`` (absolute path) and ``input_sha256`` (of the
photo's bytes: a resume skips the photo only when it still matches); a failed one holds
``error``; a done one the fields of :func:`flamefit.fitting.outputs.write_fit_outputs` (model, device, camera,
landmark error, losses, ``crop_to_original`` ...).

The run folder ``OUT/`` also holds ``summary.csv`` (:data:`SUMMARY_COLUMNS`, one row per photo of
the last run) and, while a run writes to it, ``.flamefit.lock``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flamefit.utils import write_json

REPORT_SCHEMA_VERSION = 1

PARAMS_FILE = "params.npz"
MESH_FILE = "mesh.obj"
MESH_GLB_FILE = "mesh.glb"
CAMERA_FILE = "camera.npz"
LANDMARKS_FILE = "landmarks.npz"
OVERLAY_FILE = "overlay.png"
SHEET_FILE = "sheet.png"
PROGRESS_FILE = "progress.gif"
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.csv"
LOCK_FILE = ".flamefit.lock"

#: Arrays of ``params.npz`` (see :class:`flamefit.fitting.parameters.FitParameters`).
PARAM_KEYS = ("shape", "expression", "pose", "texture", "light", "camera")
CAMERA_KEYS = ("K", "R", "t", "image_size")
LANDMARK_KEYS = ("detected", "fitted", "detected_crop", "fitted_crop")
DENSE_LANDMARK_KEYS = ("detected_dense", "fitted_dense", "dense_used")

STATUS_DONE, STATUS_FAILED = "done", "failed"
SUMMARY_COLUMNS = ("id", "input", "status", "reason", "seconds", "landmark_error_percent_iod")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_report(folder: str | Path) -> dict | None:
    """The ``report.json`` of a result folder, or None if missing or unreadable."""
    try:
        report = json.loads((Path(folder) / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def is_done(folder: str | Path) -> bool:
    """True when the folder's report says the photo was fitted."""
    report = read_report(folder)
    return report is not None and report.get("status") == STATUS_DONE


def base_report(photo_id: str, path: Path, sha256: str | None) -> dict:
    """The fields every report starts with."""
    return {"schema_version": REPORT_SCHEMA_VERSION, "id": photo_id,
            "input": str(Path(path).absolute()), "input_sha256": sha256}


def write_failure_report(folder: Path, photo_id: str, path: Path, sha256: str | None, reason: str,
                         seconds: float) -> None:
    """Record a failed photo in ``folder/report.json`` (never over a done result of another
    content: the caller decides)."""
    write_json(folder / REPORT_FILE, {**base_report(photo_id, path, sha256), "status": STATUS_FAILED,
                                      "error": reason, "seconds": round(seconds, 2)})


def write_report(folder: Path, report: dict) -> Path:
    """Write a complete report (last file of a result folder)."""
    return write_json(folder / REPORT_FILE, {"schema_version": REPORT_SCHEMA_VERSION, **report})


@dataclass
class FitResult:
    """One finished result folder, read back.

    Attributes:
        folder: ``OUT/<id>/``.
        report: its ``report.json``.
        params: :data:`PARAM_KEYS` arrays (one photo's).
        camera_type: the camera model name the parameters are for.
        resolution: the crop side the camera refers to, pixels.
        detected: ``(68, 2)`` the landmarks the fit used, original-photo pixel indices.
    """

    folder: Path
    report: dict
    params: dict[str, np.ndarray]
    camera_type: str
    resolution: int
    detected: np.ndarray

    @property
    def input(self) -> Path:
        return Path(self.report["input"])


def load_fit_result(folder: str | Path) -> FitResult:
    """Read a done result folder.

    Raises:
        ValueError: not done (with the failure reason), or a file missing or malformed.
    """
    folder = Path(folder)
    report = read_report(folder)
    if report is None:
        raise ValueError(f"{folder}: no readable {REPORT_FILE}; not a finished `flamefit fit` result")
    if report.get("status") != STATUS_DONE:
        raise ValueError(f"{folder}: its fit failed: {report.get('error') or report.get('fit_status') or 'unknown reason'}")
    try:
        with np.load(folder / PARAMS_FILE, allow_pickle=False) as data:
            params = {key: np.asarray(data[key]) for key in PARAM_KEYS}
            camera_type = str(data["camera_type"]) if "camera_type" in data.files else "orthographic"
            resolution = int(data["resolution"])
        with np.load(folder / LANDMARKS_FILE, allow_pickle=False) as data:
            detected = np.asarray(data["detected"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{folder}: incomplete or unreadable result ({error})") from None
    return FitResult(folder, report, params, camera_type, resolution, detected)


def is_result(path: str | Path) -> bool:
    """Whether ``path`` holds flamefit's own parameters: a ``params.npz``, one photo's result
    folder, or a run folder (``summary.csv``) of ``flamefit fit`` or ``flamefit regress``."""
    path = Path(path)
    if path.is_file():
        return path.name == PARAMS_FILE
    return (path / PARAMS_FILE).is_file() or (path / SUMMARY_FILE).is_file()


def find_results(out_dir: str | Path) -> list[Path]:
    """Every result folder under ``out_dir`` (nested ids included): folders holding a
    ``report.json`` or a ``params.npz``, sorted."""
    out_dir = Path(out_dir)
    found = {p.parent for name in (REPORT_FILE, PARAMS_FILE) for p in out_dir.rglob(name)}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(out_dir).parts))


def write_summary_csv(path: Path, rows: list[dict]) -> Path:
    """Write ``summary.csv`` (:data:`SUMMARY_COLUMNS`), atomically."""
    import csv
    import io

    from flamefit.utils import write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if row.get(key) is None else row.get(key)) for key in SUMMARY_COLUMNS})
    return write_text(path, buffer.getvalue())
