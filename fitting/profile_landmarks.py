"""Landmarks of steep profiles from the image regressor, where MediaPipe's face mesh gives up.

MediaPipe's face mesh does not follow faces turned beyond about 75 degrees: on renders of the
open model at 80-90 degrees of yaw its face presence drops below 0.5 (0.01-0.35 at 80,
0.00-0.10 at 90) and its points land 14-31 % of the face box off, while BlazeFace still finds
the face confidently (~0.8). The image regressor (:mod:`flamefit.fitting.image_regressor`) was trained on
renders with yaw up to 90 degrees, so on those faces its projected 68 landmarks are the better
evidence (3.5-5.7 % of the box at 80-90 degrees on the same renders).

Its input is the fit's crop around the 68 landmarks (:func:`flamefit.fitting.crop.crop_image`),
which the mesh's points place badly on a profile, so it runs in passes: each pass crops around
the previous pass's points, predicts, and projects its 68 landmarks back into the photo. A last
prediction on the final crop (the crop the fit will use) is the fit's starting point.

Used by :func:`flamefit.fitting.prepare.prepare_image` through :func:`steep_view_refiner`, for
faces whose mesh presence is below :data:`flamefit.fitting.mediapipe_detect.MIN_PRESENCE`; the
regressor must have been trained for the model in use (the shipped one is the open model's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from flamefit.fitting.crop import crop_image
from flamefit.fitting.parameters import FitParameters
from flamefit.renderer.camera_models import OrthographicCameraModel
from flamefit.renderer.pixel_frames import screen_to_index

#: Passes of the regressor, each on the crop around the previous pass's points (on renders of
#: the open model at 80-90 degrees: 16 -> 8.5 -> 3.5 % of the box at -90, 9.7 -> 6.4 -> 5.0 %
#: at +80 over three passes).
PASSES = 3


@dataclass
class RegressedLandmarks:
    """The image regressor's 68 landmarks of one face and the fit's start from them.

    Attributes:
        landmarks: ``(68, 2) float64`` pixel indices of the image given (iBUG 300-W order).
        start: initial parameter values for the fit in the crop around ``landmarks``
            (``shape``, ``expression``, ``pose``, ``texture``, ``light``, and ``camera`` when
            the fit's camera is orthographic like the regressor's), sized for the scene.
        moved: mean movement of the 68 points in each pass (px of the image), the last one
            showing whether the passes settled.
    """

    landmarks: np.ndarray
    start: dict[str, np.ndarray]
    moved: list[float] = field(default_factory=list)


#: (model file, device, regressor given) -> the image regressor on that device, or None.
_NETWORKS: dict[tuple[str, str, str], object] = {}


def image_regressor_for(scene, path=None):
    """The image regressor for ``scene``'s model file on the scene's device in eval mode:
    ``path`` (a ``flamefit train-regressor`` output folder or its ``regressor.pt``), else the
    shipped one when it was trained for this model (the open model), else None. Loaded once per
    model file, device and path.

    Raises:
        ValueError: ``path`` is not a regressor, or was trained for another model (one line).
    """
    if getattr(scene, "model_file", None) is None:
        return None
    key = (str(scene.model_file), str(_device(scene)), str(path))
    if key not in _NETWORKS:
        _NETWORKS[key] = _load_for(scene, path)
    return _NETWORKS[key]


def _load_for(scene, path):
    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.fitting.image_regressor import REGRESSOR_FILE, load_image_regressor
    from flamefit.fitting.options import SHIPPED_IMAGE_REGRESSOR_DIR

    if path is None and not (SHIPPED_IMAGE_REGRESSOR_DIR / REGRESSOR_FILE).is_file():
        return None
    network = load_image_regressor(path or SHIPPED_IMAGE_REGRESSOR_DIR, _device(scene))
    if network.spec.model_sha256 == model_sha256(scene.model_file):
        return network
    if path is not None:
        raise ValueError(f"{path}: trained for another head model "
                         f"({network.spec.model_description or network.spec.model_sha256[:12]}), not "
                         f"{scene.model_file}; train one for this model with `flamefit train-regressor`")
    return None


def _device(scene) -> torch.device:
    return next(scene.buffers()).device


def _sized(value: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, N)`` truncated or zero-padded to ``(B, size)``."""
    out = value.new_zeros(value.shape[0], size)
    keep = min(size, value.shape[1])
    out[:, :keep] = value[:, :keep]
    return out


def for_scene(params: FitParameters, scene) -> FitParameters:
    """The regressor's parameters with coefficient counts of ``scene`` (truncated or padded)."""
    return FitParameters(shape=_sized(params.shape, scene.flame.n_shape),
                         expression=_sized(params.expression, scene.flame.n_expression),
                         pose=params.pose, texture=_sized(params.texture, scene.albedo.n_components),
                         light=params.light, camera=params.camera)


def predict_in_crop(network, scene, rgb: np.ndarray, landmarks: np.ndarray):
    """One pass: the crop around ``landmarks`` (68 x 2 image pixels), the prediction on it
    (sized for ``scene``), and its 68 landmarks in image pixel indices."""
    resolution = network.spec.resolution
    crop, transform = crop_image(rgb, landmarks, resolution=resolution)
    device = _device(scene)
    image = torch.as_tensor(crop, device=device).permute(2, 0, 1)[None].float()
    params = for_scene(network.predict(image), scene)
    with torch.no_grad():
        camera = OrthographicCameraModel().camera(params.camera, resolution)
        screen = camera.project(scene.landmarks_model(params))[0, :, :2]
    points = transform.to_image(screen_to_index(screen.double().cpu().numpy()))
    return params, points


def regress_landmarks(network, scene, rgb: np.ndarray, landmarks: np.ndarray,
                      passes: int = PASSES) -> RegressedLandmarks:
    """The image regressor's 68 landmarks of the face around ``landmarks`` (any rough 68
    points, e.g. the mesh's on a profile), refined over ``passes`` crops, and the fit's start.

    Args:
        network: an :class:`flamefit.fitting.image_regressor.ImageRegressor` for ``scene``'s model.
        scene: the fit's :class:`flamefit.fitting.scene.HeadScene` (its model, coefficient
            counts and camera type).
        rgb: ``(H, W, 3) uint8`` image.
        landmarks: ``(68, 2)`` rough landmarks, pixel indices of ``rgb``.
        passes: crops whose prediction moves the points (at least 1).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    moved = []
    for _ in range(max(1, passes)):
        _, new_points = predict_in_crop(network, scene, rgb, points)
        moved.append(float(np.linalg.norm(new_points - points, axis=1).mean()))
        points = new_points
    params, _ = predict_in_crop(network, scene, rgb, points)  # in the fit's crop
    start = {key: value.astype(np.float32) for key, value in params.item(0).items()}
    if scene.camera_type != "orthographic":
        del start["camera"]  # the fit estimates its camera from the landmarks at this pose
    return RegressedLandmarks(landmarks=points, start=start, moved=moved)


#: ``refine(rgb, landmarks) -> RegressedLandmarks``, as :func:`prepare_image` takes it.
SteepViewRefiner = Callable[[np.ndarray, np.ndarray], RegressedLandmarks]


def steep_view_refiner(scene, network=None) -> SteepViewRefiner | None:
    """:func:`regress_landmarks` bound to ``scene`` and ``network`` (default: the model's image
    regressor, :func:`image_regressor_for`), or None when the model in use has none (then steep
    profiles keep the mesh's points, with a note)."""
    network = network if network is not None else image_regressor_for(scene)
    if network is None:
        return None
    return lambda rgb, landmarks: regress_landmarks(network, scene, rgb, landmarks)
