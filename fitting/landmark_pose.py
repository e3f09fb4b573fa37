"""Closed-form starts of a fit from the detected landmarks: the camera and the head's rotation.

A fit with no start (``--init zero``) begins here, before any optimiser step: the model's 51
inner landmarks (mean identity, neutral expression) are aligned to the detected ones under the
weak-perspective camera, in closed form. :func:`rotation_from_landmarks` solves for the head's
rotation (an affine fit of the 3-D points to the 2-D ones, projected onto the nearest scaled
rotation), :func:`camera_from_landmarks` for the scale and shift at a given pose.

Coordinates: targets are crop pixels (``(B, N, 2)``, x right, y down, pixel centres at
``+0.5``); internally the scene's centred coordinates (``u`` right, ``w`` up, ``[-1, 1]``
across the crop) and model space (metres; seen from the front: x right, y up, z towards the viewer).
"""

from __future__ import annotations

import torch

from flamefit.fitting.landmark_regressor import axis_angle_from_rotation
from flamefit.fitting.parameters import FitParameters
from flamefit.fitting.scene import HeadScene
from flamefit.flame.landmark_sets import INNER
from flamefit.flame.pose_layout import GLOBAL


def camera_from_landmarks(
    scene: HeadScene, params: FitParameters, target_px: torch.Tensor, resolution: int
) -> torch.Tensor:
    """Closed-form camera ``(B, n_params)`` aligning the model's inner landmarks (at the current
    pose) to the targets ``(B, 68, 2)`` (crop pixels) by scale and translation (a least-squares
    similarity without rotation)."""
    with torch.no_grad():
        model_points = scene.landmarks_model(params)[:, INNER, :2]  # (B, 51, 2) model x, y
        target = scene.centred_coordinates(target_px[:, INNER], resolution)  # (B, 51, 2)
        model_centre = model_points.mean(dim=1, keepdim=True)
        target_centre = target.mean(dim=1, keepdim=True)
        spread_model = (model_points - model_centre).pow(2).sum(dim=(1, 2)).sqrt()
        spread_target = (target - target_centre).pow(2).sum(dim=(1, 2)).sqrt()
        scale = spread_target / spread_model.clamp_min(1e-9)
        shift = target_centre[:, 0] / scale[:, None] - model_centre[:, 0]
        return scene.camera_from_similarity(scale, shift, resolution)


def rotation_from_landmarks(model_points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The rotation ``(B, 3, 3)`` that best turns ``model_points (B, N, 3)`` (model space,
    unrotated) onto ``target (B, N, 2)`` (image coordinates, x right, y up, any scale and
    origin) under a weak-perspective camera.

    Least squares gives the affine map ``A (B, 2, 3)`` with ``target ~ A p + b``; a
    weak-perspective view is ``A = s R[:2]``, so the first two rows of the rotation are those of
    ``A`` made orthonormal (``U V^T`` of its SVD, the nearest in the Frobenius norm) and the
    third is their cross product. The points are not coplanar (the nose stands out of the face),
    so a profile and its mirror image differ and ``A`` tells them apart. With ``N >= 4`` points
    in general position the result is unique; on noise-free points it is exact.
    """
    points = model_points.double()
    image = target.double()
    points = points - points.mean(dim=1, keepdim=True)
    image = image - image.mean(dim=1, keepdim=True)
    affine = torch.linalg.lstsq(points, image).solution.transpose(1, 2)  # (B, 2, 3)
    u, _, vh = torch.linalg.svd(affine, full_matrices=False)
    rows = u @ vh  # (B, 2, 3), orthonormal rows
    third = torch.linalg.cross(rows[:, 0], rows[:, 1], dim=-1)
    return torch.cat([rows, third[:, None]], dim=1).to(model_points.dtype)


def inner_landmark_error(scene: HeadScene, params: FitParameters, target_px: torch.Tensor,
                         resolution: int) -> torch.Tensor:
    """``(B,)`` mean distance (crop pixels) of the model's inner landmarks from the targets."""
    with torch.no_grad():
        return (scene.landmarks_px(params, resolution)[:, INNER] - target_px[:, INNER]).norm(dim=-1).mean(dim=1)


def pose_from_landmarks(scene: HeadScene, params: FitParameters, target_px: torch.Tensor,
                        resolution: int) -> FitParameters:
    """A start for ``params`` (with no head rotation yet) turned and framed onto the targets
    ``(B, 68, 2)`` (crop pixels): the global rotation from :func:`rotation_from_landmarks` and
    the camera from :func:`camera_from_landmarks` at it. Where the unturned head with its own
    closed-form camera lies nearer the targets (degenerate or scattered points), that is kept.
    Returns new parameters; ``params`` is not changed."""
    with torch.no_grad():
        unturned = params.detach()
        unturned.camera.copy_(camera_from_landmarks(scene, unturned, target_px, resolution))
        model_points = scene.landmarks_model(unturned)[:, INNER]
        target = scene.centred_coordinates(target_px[:, INNER], resolution)
        turned = unturned.detach()
        turned.pose[:, GLOBAL] = axis_angle_from_rotation(rotation_from_landmarks(model_points, target))
        turned.camera.copy_(camera_from_landmarks(scene, turned, target_px, resolution))
        better = inner_landmark_error(scene, turned, target_px, resolution) \
            <= inner_landmark_error(scene, unturned, target_px, resolution)
        return turned.select(better, unturned)
