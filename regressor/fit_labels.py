"""Pseudo-labels from ``flamefit fit`` results: each fitted photo's crop and its fitted parameters.

Training the image regressor on them distils the optimiser into the network. A result folder
(:mod:`flamefit.fitting.results`) gives the parameters (``params.npz``, for the crop at its
``resolution``) and, in ``report.json``, the photo's path and the crop-to-photo affine
(``crop_to_original``); the crop is cut again from the photo with that affine, so it is exactly
the crop the parameters refer to. Results that are not done, use another camera model, or whose
photo is gone are skipped with a reason, and so are results of another head model and
``flamefit regress`` outputs (a regressor is not distilled from its own predictions).

Known simplification: the network predicts the neck at rest, while a fit may have turned it a
little; the label keeps the fit's global rotation for the rotation term (the landmark and
vertex terms see the whole pose).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from flamefit.fitting.parameters import FitParameters


@dataclass
class FitLabels:
    """Crops and fitted parameters of many photos (on the CPU).

    Attributes:
        ids: result ids (``OUT``-relative folder names).
        images: ``(N, 3, R, R)`` uint8 crops.
        params: the fitted parameters, batch ``N``.
        skipped: id -> why a result was left out.
    """

    ids: list[str]
    images: torch.Tensor
    params: FitParameters
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: torch.Tensor) -> "FitLabels":
        rows_list = rows.tolist()
        return FitLabels([self.ids[i] for i in rows_list], self.images[rows],
                         FitParameters(**{k: v[rows] for k, v in self.params.tensors().items()}))


def _fit(values: np.ndarray, size: int) -> np.ndarray:
    """Pad with zeros or cut to ``size`` values."""
    values = np.asarray(values, np.float32).reshape(-1)
    return np.pad(values, (0, max(0, size - len(values))))[:size]


def _recrop(loaded, crop_to_original: np.ndarray, crop_side: int, resolution: int) -> np.ndarray:
    """The ``resolution``-pixel crop whose ``crop_side``-pixel version maps to the original photo
    by ``crop_to_original (3, 3)`` (pixel-index coordinates), cut from ``loaded`` (the photo as
    :func:`flamefit.fitting.image_io.load_image` gives it, possibly downscaled)."""
    import cv2

    from flamefit.renderer.pixel_frames import resize_index_matrix

    # resolution-crop pixels -> crop_side pixels -> original photo -> loaded photo pixels
    to_loaded = resize_index_matrix(loaded.scale) @ crop_to_original @ resize_index_matrix(crop_side / resolution)
    image = loaded.rgb.astype(np.float32) / 255.0
    zoom = 1.0 / float(np.sqrt(abs(np.linalg.det(to_loaded[:2, :2]))))
    if zoom < 0.7:  # low-pass before shrinking, as the fit's crop does
        sigma = 0.5 * (1.0 / zoom - 1.0)
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    crop = cv2.warpAffine(image, to_loaded[:2], (resolution, resolution),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return (np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8)


def load_fit_labels(folder: str | Path, spec, log=print) -> FitLabels:
    """Every done result under ``folder`` (searched recursively for ``report.json``), as crops
    at ``spec.resolution`` and parameters sized to ``spec``'s counts.

    Raises:
        ValueError: no usable result at all (one line naming the folder and why).
    """
    from flamefit.fitting.image_io import load_image
    from flamefit.fitting.results import PARAMS_FILE, REPORT_FILE, STATUS_DONE

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--from-fits {root}: not a folder (give the --out folder of `flamefit fit`)")
    ids, crops, rows, skipped = [], [], [], {}
    for report_path in sorted(root.rglob(REPORT_FILE)):
        result = report_path.parent
        name = result.relative_to(root).as_posix()
        try:
            report = json.loads(report_path.read_text())
            if report.get("status") != STATUS_DONE:
                raise ValueError("the fit did not finish")
            if report.get("method") == "image regressor":
                raise ValueError("a regressor's prediction (flamefit regress), not a fit")
            if spec.model_description and report.get("model") != spec.model_description:
                raise ValueError(f"fitted with {report.get('model')}, the regressor is for "
                                 f"{spec.model_description}")
            with np.load(result / PARAMS_FILE) as params:
                values = {k: params[k] for k in params.files}
            if str(values.get("camera_type", "orthographic")) != "orthographic":
                raise ValueError("fitted with the perspective camera (the regressor predicts the orthographic one)")
            loaded = load_image(report["input"])
            to_original = np.asarray(report["crop_to_original"], np.float64).reshape(3, 3)
            crop_side = int(values["resolution"]) if "resolution" in values else spec.resolution
        except (OSError, KeyError, ValueError, TypeError) as error:
            skipped[name] = str(error)
            continue
        crop = _recrop(loaded, to_original, crop_side, spec.resolution)
        ids.append(name)
        crops.append(crop)
        rows.append({"shape": _fit(values["shape"], spec.n_shape),
                     "expression": _fit(values["expression"], spec.n_expression),
                     "pose": _fit(values["pose"], 15), "texture": _fit(values["texture"], spec.n_texture),
                     "light": np.asarray(values["light"], np.float32).reshape(9, 3),
                     "camera": np.asarray(values["camera"], np.float32).reshape(3)})
    if not ids:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3]) or "no report.json found"
        raise ValueError(f"--from-fits {root}: no usable fit results ({reasons})")
    if skipped:
        log(f"--from-fits: {len(skipped)} result(s) left out, e.g. "
            + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3]))
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    params = FitParameters(**{k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]})
    return FitLabels(ids, images, params, skipped)
