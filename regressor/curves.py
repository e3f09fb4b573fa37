"""``training.png``: the training loss and the validation errors against the step, drawn with
OpenCV (no plotting library needed)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # RGB
_PANEL_W, _PANEL_H, _MARGIN = 560, 360, 56


def _panel(title: str, series: dict[str, tuple[list[float], list[float]]], log_y: bool) -> np.ndarray:
    """One chart: named ``(x, y)`` series, a y axis in log scale when ``log_y``."""
    image = np.full((_PANEL_H, _PANEL_W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (_MARGIN, 24), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    left, right, top, bottom = _MARGIN, _PANEL_W - 16, 40, _PANEL_H - 36
    cv2.rectangle(image, (left, top), (right, bottom), (0, 0, 0), 1)
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys)
              if math.isfinite(y) and (y > 0 or not log_y)]
    if not points:
        cv2.putText(image, "no data yet", (left + 10, top + 30), font, 0.5, (90, 90, 90), 1, cv2.LINE_AA)
        return image
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    ys = np.log10(ys) if log_y else ys
    x0, x1 = 0.0, max(xs.max(), 1.0)
    y0, y1 = ys.min(), ys.max()
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x: float, y: float) -> tuple[int, int]:
        return (int(left + (x - x0) / (x1 - x0) * (right - left)),
                int(bottom - (y - y0) / (y1 - y0) * (bottom - top)))

    for k in range(5):  # y ticks
        value = y0 + (y1 - y0) * k / 4
        _, py = to_px(x0, value)
        label = f"{10 ** value:.3g}" if log_y else f"{value:.3g}"
        cv2.line(image, (left, py), (right, py), (225, 225, 225), 1)
        cv2.putText(image, label, (4, py + 4), font, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    for k in range(5):  # x ticks
        value = x0 + (x1 - x0) * k / 4
        px, _ = to_px(value, y0)
        cv2.putText(image, f"{value:.0f}", (px - 12, bottom + 16), font, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(image, "step", (right - 34, bottom + 30), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for index, (name, (sx, sy)) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        pairs = [(x, math.log10(y) if log_y else y) for x, y in zip(sx, sy)
                 if math.isfinite(y) and (y > 0 or not log_y)]
        if len(pairs) > 1:
            cv2.polylines(image, [np.array([to_px(x, y) for x, y in pairs], np.int32)], False, colour, 2, cv2.LINE_AA)
        elif pairs:
            cv2.circle(image, to_px(*pairs[0]), 3, colour, -1)
        cv2.putText(image, name, (left + 8, top + 18 + 16 * index), font, 0.42, colour, 1, cv2.LINE_AA)
    return image


def plot_training(path: str | Path, training_log, title: str = "training") -> Path:
    """Write the two-panel chart of a :class:`flamefit.regressor.training.TrainingLog`."""
    from flamefit.utils import write_image

    loss = _panel(f"{title}: training loss", {"loss": (training_log.steps, training_log.loss)}, log_y=True)
    steps = [entry["step"] for entry in training_log.validation]
    wanted = {"rotation (deg)": "rotation_deg_median", "landmarks (% box)": "landmarks_percent_box_median",
              "face vertices (mm)": "face_vertices_mm_median", "fits: landmarks (% box)": "fits_landmarks_percent_box_median"}
    series = {label: (steps, [entry.get(key, float("nan")) for entry in training_log.validation])
              for label, key in wanted.items()
              if any(key in entry for entry in training_log.validation)}
    errors = _panel("validation (medians)", series, log_y=True)
    return write_image(path, np.concatenate([loss, errors], axis=1))
