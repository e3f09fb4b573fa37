"""``flamefit evaluate``: landmark accuracy of fit results against ground-truth annotations.

For every result folder of a ``flamefit fit`` run (:func:`flamefit.fitting.results.find_results`)
this reads the 68 ``detected`` and ``fitted`` landmarks of ``landmarks.npz`` (original-photo
pixel indices; other keys, such as dense landmarks, are ignored), finds the photo's ground-truth
file and measures, in percent:

* ``nme_iod``: the mean over the 68 points of the point-to-point distance to the truth, divided
  by the truth's **inter-ocular distance between the outer eye corners** (points 36 and 45, the
  300-W convention; see :func:`outer_inter_ocular_distance`). This is *not*
  :func:`flamefit.flame.landmark_sets.inter_ocular_distance` (between the eye centres, about 0.7
  of it), which ``report.json``'s ``landmark_error_percent_iod`` uses;
* ``nme_box``: the same mean divided by ``sqrt(w * h)`` of the truth's bounding box (the 68
  points' x, y extent; the AFLW2000-3D convention; see :func:`box_size`);
* the fit's own residuals: the fitted points' distance to the detected ones, per region of
  :mod:`flamefit.flame.landmark_sets` (contour, brows, nose, eyes, mouth, and all 68), in percent
  of the **detected** points' outer-corner inter-ocular distance (no truth needed).

Truth files (:class:`TruthIndex`) are looked up in the truth folder by the result's photo id
(``<id>.npy|.pts|.txt|.mat``, the first of these that exists), else by the photo's file stem
anywhere under the truth folder (when exactly one folder holds it); the rule that matched is
recorded. Formats are those of :func:`flamefit.fitting.user_inputs.load_landmarks`; ``.pts``
files are 1-based by default (300-W), and 1 is subtracted to make them pixel indices like ours.

The summary (:func:`summarise`) gives counts, the mean and median of each measure, failure rates
(the fraction of evaluated images whose NME exceeds 8 % and 10 % of the IOD) and the area under
the cumulative error distribution up to 8 % IOD, normalised to [0, 1]:
``AUC = (1/T) * integral_0^T F(e) de = mean_i max(0, 1 - e_i / T)`` with ``T = 8``.

Outputs (``RESULTS/evaluation/`` by default), all written atomically: ``per_image.csv``
(:data:`CSV_COLUMNS`), ``summary.json`` and ``ced.png`` (cumulative error curves, drawn with PIL).

Torch-free: the command line imports this module only when ``evaluate`` runs.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flamefit.fitting.errors import InputError
from flamefit.fitting.results import (LANDMARKS_FILE, REPORT_FILE, STATUS_DONE, find_results,
                                      read_report)
from flamefit.flame.landmark_sets import BROWS, CONTOUR, EYES, LEFT_EYE, MOUTH, N_LANDMARKS, NOSE, RIGHT_EYE
from flamefit.utils import UsageError, write_image, write_json, write_text

#: The default output folder, inside the results folder.
EVALUATION_DIR = "evaluation"
PER_IMAGE_FILE, SUMMARY_JSON_FILE, CED_FILE = "per_image.csv", "summary.json", "ced.png"
#: Truth file suffixes, in the order they are preferred when several exist for one photo.
TRUTH_SUFFIXES = (".npy", ".pts", ".txt", ".mat")
#: NME (% IOD) above which an image counts as a failure.
FAILURE_THRESHOLDS = (8.0, 10.0)
#: The CED's AUC is taken up to this NME (% IOD).
AUC_THRESHOLD = 8.0

#: Outer eye corners in the 68-point layout: the subject's right eye starts at its outer corner
#: (36); the left eye runs from its inner corner (42) over the top to its outer corner (45).
RIGHT_EYE_OUTER = RIGHT_EYE.start
LEFT_EYE_OUTER = LEFT_EYE.start + 3
#: Regions of the fit's residuals (sets of :mod:`flamefit.flame.landmark_sets`).
REGIONS = {"contour": CONTOUR, "brows": BROWS, "nose": NOSE, "eyes": EYES, "mouth": MOUTH}
RESIDUAL_NAMES = ("all", *REGIONS)

EVALUATED, NO_TRUTH, BAD_TRUTH, FIT_FAILED, BAD_RESULT = (
    "evaluated", "no truth", "bad truth", "fit failed", "unreadable result")
#: Truth-match rules: the photo id, or the photo's file stem.
MATCH_ID, MATCH_STEM = "id", "stem"
SOURCES = ("detected", "fitted")

CSV_COLUMNS = (
    "id", "input", "status", "truth_file", "truth_match", "detector", "iod_px", "box_px",
    "nme_iod_detected", "nme_iod_fitted", "nme_box_detected", "nme_box_fitted",
    *(f"residual_iod_{name}" for name in RESIDUAL_NAMES), "message",
)


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def outer_inter_ocular_distance(landmarks: np.ndarray) -> np.ndarray | float:
    """Distance between the outer eye corners (points 36 and 45), the 300-W NME normaliser.

    Args:
        landmarks: ``(..., 68, 2)`` points in any frame (e.g. pixels).

    Returns:
        ``(...)`` distances in the units of ``landmarks``; a ``float`` for one ``(68, 2)`` set.
    """
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    distance = np.linalg.norm(points[..., RIGHT_EYE_OUTER, :] - points[..., LEFT_EYE_OUTER, :], axis=-1)
    return float(distance) if distance.ndim == 0 else distance


def box_size(landmarks: np.ndarray) -> np.ndarray | float:
    """``sqrt(w * h)`` of the points' bounding box, the AFLW2000-3D NME normaliser.

    Args:
        landmarks: ``(..., 68, 2)`` points (pixels).

    Returns:
        ``(...)`` sizes in the units of ``landmarks``; a ``float`` for one set.
    """
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    extent = points.max(axis=-2) - points.min(axis=-2)
    size = np.sqrt(extent[..., 0] * extent[..., 1])
    return float(size) if size.ndim == 0 else size


def nme_percent(predicted: np.ndarray, truth: np.ndarray, normaliser: float) -> float:
    """Normalised mean error: the mean point-to-point distance over ``(68, 2)`` points divided by
    ``normaliser`` (same units), in percent; NaN when the normaliser is not positive."""
    if not normaliser > 0:
        return math.nan
    error = np.linalg.norm(np.asarray(predicted, np.float64) - np.asarray(truth, np.float64), axis=-1)
    return float(100.0 * error.mean() / normaliser)


def region_residuals(fitted: np.ndarray, detected: np.ndarray) -> dict[str, float]:
    """The fit's own mean residual per region, in % of the detected points' outer-corner IOD.

    Args:
        fitted, detected: ``(68, 2)`` original-photo pixels.

    Returns:
        ``{"all": ..., "contour": ..., "brows": ..., "nose": ..., "eyes": ..., "mouth": ...}``.
    """
    iod = outer_inter_ocular_distance(detected)
    distance = np.linalg.norm(np.asarray(fitted, np.float64) - np.asarray(detected, np.float64), axis=-1)
    if not iod > 0:
        return {name: math.nan for name in RESIDUAL_NAMES}
    out = {"all": float(100.0 * distance.mean() / iod)}
    out.update({name: float(100.0 * distance[region].mean() / iod) for name, region in REGIONS.items()})
    return out


def auc_percent_curve(errors: np.ndarray, threshold: float = AUC_THRESHOLD) -> float:
    """Area under the cumulative error distribution of ``errors`` (%) from 0 to ``threshold``,
    divided by ``threshold`` (1 = every error 0, 0 = every error at or above the threshold).
    Computed exactly: ``mean(max(0, 1 - e / threshold))``. NaN for no errors."""
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        return math.nan
    return float(np.clip(1.0 - errors / threshold, 0.0, None).mean())


# ---------------------------------------------------------------------------------------------
# Truth files and results
# ---------------------------------------------------------------------------------------------


@dataclass
class TruthMatch:
    """A truth file found for a photo: ``path`` and the ``rule`` that matched (``"id"`` or
    ``"stem"``), or ``problem`` when the stem is ambiguous (``path`` is None then)."""

    path: Path | None
    rule: str
    problem: str = ""


class TruthIndex:
    """The truth files under a folder, by relative path without suffix and by stem.

    Args:
        folder: searched recursively for :data:`TRUTH_SUFFIXES` files (hidden folders skipped).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.by_id: dict[str, dict[str, Path]] = {}
        self.by_stem: dict[str, dict[str, dict[str, Path]]] = {}
        for path in sorted(self.folder.rglob("*")):
            suffix = path.suffix.lower()
            relative = path.relative_to(self.folder)
            if suffix not in TRUTH_SUFFIXES or any(p.startswith(".") for p in relative.parts) \
                    or not path.is_file():
                continue
            key = relative.with_suffix("").as_posix()
            self.by_id.setdefault(key, {}).setdefault(suffix, path)
            self.by_stem.setdefault(path.stem, {}).setdefault(relative.parent.as_posix(), {}) \
                .setdefault(suffix, path)

    def __len__(self) -> int:
        return len(self.by_id)

    @staticmethod
    def _preferred(files: dict[str, Path]) -> Path:
        return next(files[s] for s in TRUTH_SUFFIXES if s in files)

    def find(self, photo_id: str, stem: str | None) -> TruthMatch | None:
        """The truth file of a photo: ``<folder>/<photo_id>.<suffix>`` first, else the one
        folder under ``<folder>`` holding ``<stem>.<suffix>``; None when neither exists."""
        if photo_id in self.by_id:
            return TruthMatch(self._preferred(self.by_id[photo_id]), MATCH_ID)
        for name in dict.fromkeys(n for n in (stem, photo_id.rsplit("/", 1)[-1]) if n):
            folders = self.by_stem.get(name)
            if not folders:
                continue
            if len(folders) > 1:
                shown = ", ".join(str(self._preferred(f)) for f in list(folders.values())[:3])
                return TruthMatch(None, MATCH_STEM, f"several truth files have the stem {name!r} "
                                                    f"({shown}{' ...' if len(folders) > 3 else ''}); "
                                                    "name them by the photo id instead")
            return TruthMatch(self._preferred(next(iter(folders.values()))), MATCH_STEM)
        return None


def load_truth(path: Path, pts_one_based: bool = True) -> np.ndarray:
    """A truth file's 68 points as ``(68, 2) float64`` pixel indices (x, y; origin top-left).

    Raises:
        InputError: unreadable or the wrong layout; the message names the file and the layout.
    """
    from flamefit.fitting.user_inputs import load_landmarks

    return load_landmarks(path, pts_one_based=pts_one_based)


def load_result_landmarks(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(detected, fitted)`` ``(68, 2)`` original-photo pixels of a result's ``landmarks.npz``.

    Raises:
        ValueError: missing, unreadable, wrong shape or not finite.
    """
    path = folder / LANDMARKS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [np.asarray(data[key], dtype=np.float64) for key in SOURCES]
    except (OSError, KeyError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: cannot read 'detected' and 'fitted' ({error})") from None
    for key, points in zip(SOURCES, arrays):
        if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
            raise ValueError(f"{path}: {key!r} has shape {points.shape} or non-finite values; "
                             f"expected ({N_LANDMARKS}, 2) pixels")
    return arrays[0], arrays[1]


@dataclass
class ImageRecord:
    """One result folder's evaluation.

    Attributes:
        id: the photo id (``report.json``'s ``id``, else the folder relative to the results).
        folder: the result folder.
        input: the photo the result was made from (``report.json``'s ``input``), or ``""``.
        status: :data:`EVALUATED`, :data:`NO_TRUTH`, :data:`BAD_TRUTH`, :data:`FIT_FAILED` or
            :data:`BAD_RESULT`.
        truth_file, truth_match: the truth file and the rule that found it (``"id"``/``"stem"``).
        detector: the landmark detector the report names (``detector`` or ``landmarks_source``).
        iod_px, box_px: the truth's normalisers, original-photo pixels.
        nme: ``{"iod_detected", "iod_fitted", "box_detected", "box_fitted"}`` in percent.
        residuals: :func:`region_residuals` (for every readable result, truth or not).
        message: why the image was not evaluated.
    """

    id: str
    folder: Path
    input: str = ""
    status: str = EVALUATED
    truth_file: Path | None = None
    truth_match: str = ""
    detector: str = ""
    iod_px: float = math.nan
    box_px: float = math.nan
    nme: dict[str, float] = field(default_factory=dict)
    residuals: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def row(self) -> dict:
        """The record as a :data:`CSV_COLUMNS` row (numbers rounded, blanks for missing)."""

        def number(value: float | None, digits: int = 4):
            return "" if value is None or not math.isfinite(value) else round(value, digits)

        row = {"id": self.id, "input": self.input, "status": self.status,
               "truth_file": "" if self.truth_file is None else str(self.truth_file),
               "truth_match": self.truth_match, "detector": self.detector,
               "iod_px": number(self.iod_px, 3), "box_px": number(self.box_px, 3),
               "message": self.message}
        for key in ("iod_detected", "iod_fitted", "box_detected", "box_fitted"):
            row[f"nme_{key}"] = number(self.nme.get(key))
        for name in RESIDUAL_NAMES:
            row[f"residual_iod_{name}"] = number(self.residuals.get(name))
        return row


def report_detector(report: dict) -> str:
    """The detector a report names: ``detector`` (newer results) or ``landmarks_source``."""
    for key in ("detector", "landmarks_source"):
        value = report.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def evaluate_folder(folder: Path, results_dir: Path, truth: TruthIndex,
                    pts_one_based: bool = True) -> ImageRecord:
    """Evaluate one result folder against the truth index (never raises for bad files)."""
    report = read_report(folder) or {}
    photo_id = str(report.get("id") or folder.relative_to(results_dir).as_posix())
    record = ImageRecord(id=photo_id, folder=folder, input=str(report.get("input") or ""),
                         detector=report_detector(report))
    stem = Path(record.input).stem if record.input else None
    match = truth.find(photo_id, stem)
    if match is not None:
        record.truth_file, record.truth_match = match.path, match.rule

    if not report:
        record.status, record.message = BAD_RESULT, f"{folder / REPORT_FILE}: missing or unreadable"
        return record
    if report.get("status") != STATUS_DONE:
        record.status = FIT_FAILED
        record.message = str(report.get("error") or report.get("fit_status") or "the fit did not finish")
        return record
    try:
        detected, fitted = load_result_landmarks(folder)
    except ValueError as error:
        record.status, record.message = BAD_RESULT, str(error)
        return record
    record.residuals = region_residuals(fitted, detected)

    if match is None:
        record.status = NO_TRUTH
        record.message = (f"no {photo_id}.{{npy,pts,txt,mat}} in {truth.folder}"
                          + (f", nor a {stem}.* under it" if stem else ""))
        return record
    if match.path is None:
        record.status, record.message = BAD_TRUTH, match.problem
        return record
    try:
        points = load_truth(match.path, pts_one_based=pts_one_based)
    except InputError as error:
        record.status, record.message = BAD_TRUTH, str(error)
        return record
    record.iod_px, record.box_px = outer_inter_ocular_distance(points), box_size(points)
    if not (record.iod_px > 0 and record.box_px > 0):
        record.status = BAD_TRUTH
        record.message = (f"{match.path}: the outer eye corners (points 36 and 45) coincide or the "
                          "points span no area; expected 68 distinct points in the 68-point layout")
        return record
    for source, predicted in zip(SOURCES, (detected, fitted)):
        record.nme[f"iod_{source}"] = nme_percent(predicted, points, record.iod_px)
        record.nme[f"box_{source}"] = nme_percent(predicted, points, record.box_px)
    return record


# ---------------------------------------------------------------------------------------------
# Summary, curve, table
# ---------------------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    values = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if values.size == 0:
        return {"n": 0, "mean": None, "median": None}
    return {"n": int(values.size), "mean": round(float(values.mean()), 4),
            "median": round(float(np.median(values)), 4)}


def summarise(records: list[ImageRecord], results_dir: Path, truth_dir: Path,
              pts_one_based: bool) -> dict:
    """The ``summary.json`` content of an evaluation (see the module docstring)."""
    evaluated = [r for r in records if r.status == EVALUATED]
    statuses = Counter(r.status for r in records)
    failed_fits_with_truth = sum(1 for r in records if r.status == FIT_FAILED and r.truth_file)
    measures = {}
    for source in SOURCES:
        iod = np.array([r.nme[f"iod_{source}"] for r in evaluated], np.float64)
        entry = {"nme_iod": _stats(list(iod)),
                 "nme_box": _stats([r.nme[f"box_{source}"] for r in evaluated]),
                 "failure_rate_iod": {}, "failure_rate_iod_counting_failed_fits": {},
                 f"auc_iod_{AUC_THRESHOLD:g}": None if iod.size == 0 else round(auc_percent_curve(iod), 4)}
        for threshold in FAILURE_THRESHOLDS:
            over = int((iod > threshold).sum())
            entry["failure_rate_iod"][f"{threshold:g}"] = None if iod.size == 0 else round(over / iod.size, 4)
            total = iod.size + failed_fits_with_truth
            entry["failure_rate_iod_counting_failed_fits"][f"{threshold:g}"] = (
                None if total == 0 else round((over + failed_fits_with_truth) / total, 4))
        measures[source] = entry
    with_residuals = [r for r in records if r.residuals]
    return {
        "results": str(results_dir), "truth": str(truth_dir),
        "counts": {"results": len(records), **{s: statuses.get(s, 0) for s in
                                               (EVALUATED, NO_TRUTH, BAD_TRUTH, FIT_FAILED, BAD_RESULT)}},
        "truth_match": {rule: sum(1 for r in records if r.truth_file and r.truth_match == rule)
                        for rule in (MATCH_ID, MATCH_STEM)},
        "detectors": dict(sorted(Counter(r.detector or "unknown" for r in records).items())),
        "detected": measures["detected"],
        "fitted": measures["fitted"],
        "residuals_iod": {name: _stats([r.residuals[name] for r in with_residuals])
                          for name in RESIDUAL_NAMES},
        "definitions": {
            "nme_iod": "mean over the 68 points of the distance to the truth, in % of the truth's "
                       "distance between the outer eye corners (points 36 and 45, 0-based; 300-W)",
            "nme_box": "the same mean in % of sqrt(w*h) of the truth's 68-point bounding box "
                       "(AFLW2000-3D)",
            "failure_rate_iod": "fraction of evaluated images whose nme_iod exceeds the threshold "
                                "(%); the '_counting_failed_fits' variant adds failed fits that "
                                "have a truth file, as failures",
            f"auc_iod_{AUC_THRESHOLD:g}": f"area under the cumulative error curve from 0 to "
                                          f"{AUC_THRESHOLD:g} % IOD, divided by {AUC_THRESHOLD:g} "
                                          "(1 is perfect), over the evaluated images",
            "residuals_iod": "fitted vs detected landmarks per region, in % of the detected points' "
                             "outer-corner IOD, over every readable result (truth or not)",
            "pts_one_based": ".pts coordinates had 1 subtracted (300-W's 1-based pixels)"
                             if pts_one_based else ".pts coordinates were read unchanged",
        },
        "pts_one_based": pts_one_based,
        "not_evaluated": {r.id: f"{r.status}: {r.message}" for r in records if r.status != EVALUATED},
    }


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _nice_limit(values: np.ndarray) -> float:
    """The x-axis end: 10 % IOD, or more when a tenth of the errors lie beyond it."""
    if values.size == 0:
        return 10.0
    high = float(np.percentile(values, 90))
    return next((limit for limit in (10.0, 15.0, 20.0, 30.0, 50.0) if high <= limit), 100.0)


def draw_ced(errors: dict[str, np.ndarray], threshold: float = AUC_THRESHOLD,
             size: tuple[int, int] = (900, 620)) -> np.ndarray:
    """Cumulative error distribution curves: the fraction of images whose NME (% IOD) is at most
    x, for each named error set.

    Args:
        errors: label -> ``(N,)`` NME values in % IOD.
        threshold: drawn as a dashed line (the AUC's limit).
        size: ``(width, height)`` of the picture in pixels.

    Returns:
        ``(H, W, 3)`` uint8 RGB picture with axes, ticks, grid, labels and a legend.
    """
    from PIL import Image, ImageDraw

    s = 2  # drawn at twice the size, then downsampled: smooth lines and text
    width, height = size[0] * s, size[1] * s
    left, right, top, bottom = 95 * s, 30 * s, 60 * s, 80 * s
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small, title_font = _font(17 * s), _font(15 * s), _font(20 * s)
    all_errors = np.concatenate([np.zeros(0)] + [np.asarray(e, np.float64) for e in errors.values()])
    x_max = _nice_limit(all_errors[np.isfinite(all_errors)])
    x0, x1, y0, y1 = left, width - right, height - bottom, top  # plot box (y0 is the bottom)

    def px(x: float, y: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * min(x, x_max) / x_max, y0 - (y0 - y1) * y

    step = {10.0: 1.0, 15.0: 1.0, 20.0: 2.0, 30.0: 5.0, 50.0: 5.0}.get(x_max, 10.0)
    grey, dark = (225, 225, 225), (40, 40, 40)
    for i in range(int(round(x_max / step)) + 1):
        x = i * step
        draw.line([px(x, 0), px(x, 1)], fill=grey, width=s)
        draw.line([px(x, 0), (px(x, 0)[0], y0 + 6 * s)], fill=dark, width=s)
        draw.text((px(x, 0)[0], y0 + 9 * s), f"{x:g}", fill=dark, font=small, anchor="ma")
    for i in range(6):
        y = i / 5
        draw.line([px(0, y), px(x_max, y)], fill=grey, width=s)
        draw.line([(x0 - 6 * s, px(0, y)[1]), px(0, y)], fill=dark, width=s)
        draw.text((x0 - 10 * s, px(0, y)[1]), f"{y:.1f}", fill=dark, font=small, anchor="rm")
    draw.rectangle([x0, y1, x1, y0], outline=dark, width=s)

    # The AUC limit, dashed.
    tx, _ = px(threshold, 0)
    for start in range(int(y1), int(y0), 14 * s):
        draw.line([(tx, start), (tx, min(start + 8 * s, y0))], fill=(110, 110, 110), width=s)
    draw.text((tx + 5 * s, y1 + 5 * s), f"AUC limit {threshold:g} %", fill=(90, 90, 90), font=small)

    colours = [(20, 140, 40), (200, 40, 40), (40, 80, 200), (200, 140, 0)]
    legend = []
    occupied = Image.new("L", (width, height), 0)  # where curves and labels are: the legend avoids them
    mark = ImageDraw.Draw(occupied)
    mark.text((tx + 5 * s, y1 + 5 * s), f"AUC limit {threshold:g} %", fill=255, font=small)
    for (label, values), colour in zip(errors.items(), colours):
        values = np.sort(np.asarray(values, np.float64))
        n = values.size
        if n == 0:
            continue
        points, level = [px(0, 0)], 0.0
        for i, e in enumerate(values):  # a step up of 1/n at each error
            if not math.isfinite(e) or e > x_max:
                break
            points += [px(e, level), px(e, (i + 1) / n)]
            level = (i + 1) / n
        points.append(px(x_max, level))
        draw.line(points, fill=colour, width=3 * s, joint="curve")
        mark.line(points, fill=255, width=3 * s)
        legend.append((f"{label}: median {np.median(values):.2f} %, AUC@{threshold:g} "
                       f"{auc_percent_curve(values, threshold):.3f}, n={n}", colour))

    if legend:  # lower right, upper left or lower left: the corner the curves cross least
        line_h = 26 * s
        text_w = max(draw.textlength(text, font=font) for text, _ in legend)
        box_w, box_h = int(text_w + 60 * s), line_h * len(legend) + 12 * s
        pad = 12 * s
        corners = [(x1 - pad - box_w, y0 - pad - box_h), (x0 + pad, y1 + pad),
                   (x0 + pad, y0 - pad - box_h)]
        mask = np.asarray(occupied)
        bx0, by0 = min(corners, key=lambda c: int(mask[int(c[1]):int(c[1]) + box_h,
                                                       int(c[0]):int(c[0]) + box_w].sum()))
        bx1, by1 = bx0 + box_w, by0 + box_h
        draw.rectangle([bx0, by0, bx1, by1], fill="white", outline=(150, 150, 150), width=s)
        for i, (text, colour) in enumerate(legend):
            cy = by0 + 6 * s + line_h * i + line_h / 2
            draw.line([(bx0 + 10 * s, cy), (bx0 + 42 * s, cy)], fill=colour, width=3 * s)
            draw.text((bx0 + 50 * s, cy), text, fill=dark, font=font, anchor="lm")
    else:
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "no image evaluated", fill=dark, font=title_font,
                  anchor="mm")

    draw.text(((x0 + x1) / 2, 18 * s), "Cumulative error distribution", fill=dark,
              font=title_font, anchor="mt")
    draw.text(((x0 + x1) / 2, height - 16 * s),
              "NME (% of the inter-ocular distance, outer eye corners)", fill=dark, font=font,
              anchor="md")
    label = "fraction of images"
    label_w = int(draw.textlength(label, font=font)) + 4 * s
    tag = Image.new("RGB", (label_w, 26 * s), "white")
    ImageDraw.Draw(tag).text((2 * s, 13 * s), label, fill=dark, font=font, anchor="lm")
    tag = tag.rotate(90, expand=True)
    image.paste(tag, (18 * s, int((y0 + y1) / 2 - tag.height / 2)))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def _fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_table(summary: dict) -> str:
    """The short text table ``flamefit evaluate`` prints."""
    counts, match = summary["counts"], summary["truth_match"]
    auc_key = f"auc_iod_{AUC_THRESHOLD:g}"
    lines = [
        f"{counts['results']} results: {counts[EVALUATED]} evaluated (truth matched by id "
        f"{match[MATCH_ID]}, by stem {match[MATCH_STEM]}), {counts[NO_TRUTH]} without truth, "
        f"{counts[BAD_TRUTH]} bad truth files, {counts[FIT_FAILED]} failed fits, "
        f"{counts[BAD_RESULT]} unreadable results",
        f"{'':10}{'NME %IOD mean':>14}{'median':>8}{'NME %box mean':>15}{'median':>8}"
        + "".join(f"{'>' + format(t, 'g') + '% IOD':>10}" for t in FAILURE_THRESHOLDS)
        + f"{'AUC@' + format(AUC_THRESHOLD, 'g') + '%':>9}",
    ]
    for source in SOURCES:
        m = summary[source]
        rates = m["failure_rate_iod"]
        lines.append(
            f"{source:10}{_fmt(m['nme_iod']['mean']):>14}{_fmt(m['nme_iod']['median']):>8}"
            f"{_fmt(m['nme_box']['mean']):>15}{_fmt(m['nme_box']['median']):>8}"
            + "".join(f"{_fmt(None if rates[f'{t:g}'] is None else 100 * rates[f'{t:g}'], '.1f', ' %'):>10}"
                      for t in FAILURE_THRESHOLDS)
            + f"{_fmt(m[auc_key], '.3f'):>9}")
    residuals = summary["residuals_iod"]
    lines.append("fit residuals (fitted vs detected, mean % IOD): "
                 + "  ".join(f"{name} {_fmt(residuals[name]['mean'])}" for name in RESIDUAL_NAMES))
    lines.append("detectors: " + ", ".join(f"{k} ({v})" for k, v in summary["detectors"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """What :func:`evaluate_results` measured and wrote.

    Attributes:
        records: one per result folder, sorted by folder.
        summary: the ``summary.json`` content.
        out_dir: where the files are; ``files``: the paths written.
    """

    records: list[ImageRecord]
    summary: dict
    out_dir: Path
    files: list[Path]

    @property
    def complete(self) -> bool:
        """True when every result was evaluated (the command's exit status 0)."""
        return all(r.status == EVALUATED for r in self.records)

    def table(self) -> str:
        return format_table(self.summary)


def write_per_image_csv(path: Path, records: list[ImageRecord]) -> Path:
    """Write ``per_image.csv`` (:data:`CSV_COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.row())
    return write_text(path, buffer.getvalue())


def evaluate_results(results_dir: str | Path, truth_dir: str | Path, out_dir: str | Path | None = None,
                     pts_one_based: bool = True) -> Evaluation:
    """Measure landmark NME of every ``flamefit fit`` result against ground-truth files.

    Args:
        results_dir: a ``flamefit fit`` output folder (result folders found recursively).
        truth_dir: the folder of truth files (see :class:`TruthIndex`).
        out_dir: where ``per_image.csv``, ``summary.json`` and ``ced.png`` go (default
            ``results_dir/evaluation``).
        pts_one_based: ``.pts`` files count pixels from 1 (300-W): subtract 1.

    Returns:
        the :class:`Evaluation` (images without truth, with a bad truth file or a failed fit
        are recorded with the reason; they do not stop the others).

    Raises:
        UsageError: ``results_dir`` or ``truth_dir`` is not a folder, holds no results or no
            truth files, no truth file matches any result, or ``out_dir`` is a result folder.
    """
    results_dir, truth_dir = Path(results_dir), Path(truth_dir)
    out_dir = results_dir / EVALUATION_DIR if out_dir is None else Path(out_dir)
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir}: not a folder; give the --out folder of a `flamefit fit` run")
    if not truth_dir.is_dir():
        raise UsageError(f"--truth {truth_dir}: not a folder; give the folder of ground-truth "
                         f"landmark files ({', '.join(TRUTH_SUFFIXES)})")
    folders = [f for f in find_results(results_dir) if f.resolve() != out_dir.resolve()]
    if not folders:
        raise UsageError(f"{results_dir}: no `flamefit fit` results (folders with {REPORT_FILE}) "
                         "found; give the --out folder of a fit run")
    if (out_dir / REPORT_FILE).exists():
        raise UsageError(f"{out_dir}: is a fit result folder; choose another --out")
    truth = TruthIndex(truth_dir)
    if not len(truth):
        raise UsageError(f"--truth {truth_dir}: holds no {', '.join(TRUTH_SUFFIXES)} files")
    records = [evaluate_folder(folder, results_dir, truth, pts_one_based) for folder in folders]
    if not any(r.truth_file for r in records):
        example_truth = next(iter(truth.by_id))
        raise UsageError(f"--truth {truth_dir}: no truth file matches any of the {len(records)} "
                         f"results (photo ids such as {records[0].id!r}, truth files such as "
                         f"{example_truth!r}); name truth files <id>.npy|.pts|.txt|.mat or after "
                         "the photo's file name")

    summary = summarise(records, results_dir, truth_dir, pts_one_based)
    evaluated = [r for r in records if r.status == EVALUATED]
    curves = {source: np.array([r.nme[f"iod_{source}"] for r in evaluated]) for source in SOURCES}
    files = [
        write_per_image_csv(out_dir / PER_IMAGE_FILE, records),
        write_json(out_dir / SUMMARY_JSON_FILE, summary),
        write_image(out_dir / CED_FILE, draw_ced(curves)),
    ]
    return Evaluation(records, summary, out_dir, files)
