"""Camera models: what a fit's camera parameter vector means, one type per camera.

A *camera model* owns the packing of the ``(B, n_params)`` camera parameters that the fit
optimises, and everything that depends on it:

* :meth:`CameraModel.initial` — neutral parameters (the head filling the crop, centred);
* :meth:`CameraModel.camera` — the renderer camera of :mod:`flamefit.renderer.cameras`;
* :meth:`CameraModel.from_similarity` — parameters from a 2D similarity (model ``(x, y)`` ->
  pixels), the closed-form start of a fit;
* :meth:`CameraModel.to_opencv` / :meth:`CameraModel.from_opencv` — OpenCV ``K, R, t`` and back;
* :meth:`CameraModel.random` — a random plausible framing, for synthetic data.

Models are looked up by the names of :data:`flamefit.renderer.choices.CAMERA_MODELS` with
:func:`camera_model`; nothing outside this module switches on a camera name.

Spaces are those of :mod:`flamefit.renderer.cameras`: model space is FLAME's (metres, y up,
+z toward the viewer), pixels have their origin at the top-left corner with pixel centres at
integer + 0.5, and OpenCV's ``K`` uses OpenCV's integer-centre convention
(``cx_opencv = cx - 0.5``). ``image_size`` is ``(H, W)`` pixels, or one int for a square crop.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from flamefit.renderer.cameras import (
    FRONT_FACING_ROTATION,
    OrthographicCamera,
    PerspectiveCamera,
    front_facing_rotation,
)
from flamefit.renderer.choices import CAMERA_MODELS

__all__ = [
    "CameraModel",
    "OrthographicCameraModel",
    "PerspectiveCameraModel",
    "CAMERA_MODEL_TYPES",
    "camera_model",
]

# Tolerances of from_opencv's form checks (K, R, t may come from float32 exports or files).
_ROTATION_ATOL = 1e-5
_PIXEL_ATOL = 1e-3
_FOCAL_RTOL = 1e-5


def _image_hw(image_size) -> tuple[int, int]:
    """``(H, W)`` from ``(H, W)`` or one int (a square image)."""
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {image_size}")
    return height, width


def _as_batched_opencv(K, R, t, image_size, model: str):
    """Check that ``K, R, t`` are an OpenCV camera of the front-facing form every model here
    exports and return them batched: ``K (B,3,3), R (B,3,3), t (B,3)`` (torch, ``K``'s dtype),
    plus whether the input was unbatched.

    The form: ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with the principal point at the
    image centre (``cx = W/2 - 0.5``, ``cy = H/2 - 0.5``, OpenCV pixels), ``R = diag(1, -1, -1)``
    (model space -> OpenCV camera space, a camera in front of the face), ``t_z > 0`` (the model
    origin in front of the camera).

    Raises:
        ValueError: shapes or values not of that form, saying which.
    """
    K = torch.as_tensor(K)
    if not K.is_floating_point():
        K = K.to(torch.get_default_dtype())
    R = torch.as_tensor(R, dtype=K.dtype, device=K.device)
    t = torch.as_tensor(t, dtype=K.dtype, device=K.device)
    unbatched = K.dim() == 2
    if unbatched:
        K, R, t = K[None], R[None], t[None]
    if K.dim() != 3 or K.shape[1:] != (3, 3) or R.shape != K.shape or t.shape != (K.shape[0], 3):
        raise ValueError(f"{model} camera from OpenCV: expected K (B,3,3), R (B,3,3), t (B,3) (or "
                         f"(3,3), (3,3), (3,)), got {tuple(K.shape)}, {tuple(R.shape)}, {tuple(t.shape)}")
    height, width = _image_hw(image_size)
    off_diagonal = torch.stack([K[:, 0, 1], K[:, 1, 0], K[:, 2, 0], K[:, 2, 1], K[:, 2, 2] - 1.0], dim=1)
    if off_diagonal.abs().max() > 1e-9 * K[:, :2, :2].abs().max().clamp_min(1.0):
        raise ValueError(f"{model} camera from OpenCV: K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] "
                         f"(no skew), got {K.tolist()}")
    centre = K.new_tensor([width / 2.0 - 0.5, height / 2.0 - 0.5])
    offset = (K[:, :2, 2] - centre).abs().max()
    if offset > _PIXEL_ATOL:
        raise ValueError(f"{model} camera from OpenCV: the principal point must be the centre of the "
                         f"{height} x {width} image (cx, cy) = {tuple(centre.tolist())} (OpenCV pixels); "
                         f"it is {offset.item():.4g} px away")
    front = torch.tensor(FRONT_FACING_ROTATION, dtype=K.dtype, device=K.device)
    turn = (R - front).abs().max()
    if turn > _ROTATION_ATOL:
        raise ValueError(f"{model} camera from OpenCV: R must be diag(1, -1, -1), the camera looking at "
                         f"the face from the front (the head's rotation is its global pose, not the "
                         f"camera's); R differs from it by up to {turn.item():.4g}. Fold R into the "
                         f"global pose first")
    if (t[:, 2] <= 0).any():
        raise ValueError(f"{model} camera from OpenCV: t_z must be > 0 (the head in front of the "
                         f"camera), got {t[:, 2].tolist()}")
    if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
        raise ValueError(f"{model} camera from OpenCV: fx, fy must be > 0, got {K[:, :2, :2].diagonal(dim1=1, dim2=2).tolist()}")
    if ((K[:, 0, 0] - K[:, 1, 1]).abs() > _FOCAL_RTOL * K[:, 0, 0]).any():
        raise ValueError(f"{model} camera from OpenCV: fx must equal fy (square pixels), got "
                         f"{K[:, :2, :2].diagonal(dim1=1, dim2=2).tolist()}")
    return K, R, t, unbatched


class CameraModel(ABC):
    """One camera model: the meaning of a ``(B, n_params)`` camera parameter vector.

    Subclasses are small frozen dataclasses whose fields are the model's fixed settings (not
    optimised); :func:`camera_model` builds them by name.
    """

    name: ClassVar[str]
    n_params: ClassVar[int]

    @abstractmethod
    def initial(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        """``(B, n_params)`` neutral parameters: the head filling a crop, centred."""

    @abstractmethod
    def camera(self, params: torch.Tensor, image_size, zoom: float = 1.0):
        """The renderer camera (:mod:`flamefit.renderer.cameras`) for ``params (B, n_params)`` on
        an image of ``image_size``; ``zoom`` scales the image about its centre (0.5: a frame
        twice as wide)."""

    @abstractmethod
    def from_similarity(self, scale: torch.Tensor, shift: torch.Tensor, image_size) -> torch.Tensor:
        """``(B, n_params)`` parameters that map model-space ``(x, y)`` near the origin (``z = 0``)
        to pixels ``px = W/2 + S * scale * (x + shift_x)``, ``py = H/2 - S * scale * (y + shift_y)``
        with ``S = min(H, W) / 2`` (for a square crop of side R: ``S = R/2``).

        Args:
            scale: ``(B,)`` in ``S``-pixels per metre (DECA's ``s``).
            shift: ``(B, 2)`` metres, model space.
        """

    @abstractmethod
    def to_opencv(self, params: torch.Tensor, image_size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """OpenCV ``K (B,3,3), R (B,3,3), t (B,3)`` for ``params (B, n_params)``:
        ``cv2.projectPoints(X, rvec(R), t, K, None) + 0.5`` is our pixel projection of
        model-space ``X`` (exactly, or as the model's docstring bounds it)."""

    @abstractmethod
    def from_opencv(self, K, R, t, image_size) -> torch.Tensor:
        """``(B, n_params)`` parameters from OpenCV ``K, R, t`` of this model's form (the inverse of
        :meth:`to_opencv`); unbatched ``(3,3), (3,3), (3,)`` give ``(n_params,)``.

        Raises:
            ValueError: ``K, R, t`` are not of this model's form (a rotated ``R``, an off-centre
                principal point, another field of view...), saying which.
        """

    @abstractmethod
    def random(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``(B, n_params)`` random parameters framing a head in a crop (for synthetic data),
        drawn on the CPU from ``generator``."""

    @abstractmethod
    def step_scale(self, params: torch.Tensor, image_size) -> torch.Tensor:
        """``(B, n_params)`` per-parameter units in which an optimiser's steps are even: near
        ``params``, a change of ``step * scale`` in a translation parameter shifts the image by
        ``step`` (in units of ``S = min(H, W) / 2`` pixels, the ``[-1, 1]`` crop coordinates), and
        in the size parameter changes the image's size by a fraction ``step``.

        A fit multiplies each optimiser step by it (Adam moves every parameter by about its
        learning rate, whatever the parameter's units): without it, a step of 0.01 in a
        translation in metres moves a face that fills a 224² crop by ~13 px."""


@dataclass(frozen=True)
class OrthographicCameraModel(CameraModel):
    """DECA's weak-perspective camera: parameters ``[s, tx, ty]`` (:class:`OrthographicCamera`).

    ``px = W/2 + S * s * (x + tx)``, ``py = H/2 - S * s * (y + ty)`` with ``S = min(H, W) / 2``:
    ``s`` in ``S``-pixels per metre (NDC per model unit), ``tx, ty`` in metres, model space. DECA's
    parameters load unchanged.

    Attributes:
        opencv_distance: metres from the face to the pinhole camera that :meth:`to_opencv`
            exports (OpenCV has no orthographic camera; see
            :meth:`OrthographicCamera.to_opencv` for the approximation's bound).
    """

    opencv_distance: float = 1000.0

    name: ClassVar[str] = "orthographic"
    n_params: ClassVar[int] = 3

    def initial(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        """``(B, 3)`` ``[8, 0, 0]``: a head (~0.25 m tall) filling the crop, centred."""
        return torch.tensor([[8.0, 0.0, 0.0]], dtype=dtype, device=device).expand(batch, 3).clone()

    def camera(self, params: torch.Tensor, image_size, zoom: float = 1.0) -> OrthographicCamera:
        if zoom != 1.0:
            params = torch.cat([params[:, :1] * zoom, params[:, 1:]], dim=1)
        return OrthographicCamera(params, _image_hw(image_size))

    def from_similarity(self, scale: torch.Tensor, shift: torch.Tensor, image_size) -> torch.Tensor:
        """``[scale, shift_x, shift_y]``: the similarity *is* this camera (exact for any ``z``)."""
        return torch.cat([scale[:, None], shift], dim=1)

    def to_opencv(self, params: torch.Tensor, image_size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pinhole of :meth:`OrthographicCamera.to_opencv` at ``opencv_distance``:
        ``R = diag(1, -1, -1)``, ``t = (tx, -ty, d)``, ``fx = fy = S * s * d``, principal point at
        the image centre. Its projection differs from ours by at most
        ``|p - c| * |z| / (d - z)`` pixels per coordinate (2e-4 of the offset from the centre
        for a head at the default 1000 m)."""
        return self.camera(params, image_size).to_opencv(self.opencv_distance)

    def from_opencv(self, K, R, t, image_size) -> torch.Tensor:
        """``[s, tx, ty] = [fx / (S * t_z), t_x, -t_y]`` from a pinhole of :meth:`to_opencv`'s form
        (any distance ``t_z > 0``: the orthographic camera keeps its scale ``fx / t_z``)."""
        K, R, t, unbatched = _as_batched_opencv(K, R, t, image_size, self.name)
        height, width = _image_hw(image_size)
        half = min(height, width) / 2.0
        params = torch.stack([K[:, 0, 0] / (half * t[:, 2]), t[:, 0], -t[:, 1]], dim=1)
        return params[0] if unbatched else params

    def random(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``s`` uniform in [7, 8), ``tx, ty`` normal with 1 cm spread."""
        params = torch.empty(batch, 3)
        params[:, 0] = 7.0 + torch.rand(batch, generator=generator)
        params[:, 1:] = torch.randn(batch, 2, generator=generator) * 0.01
        return params

    def step_scale(self, params: torch.Tensor, image_size) -> torch.Tensor:
        """``[s, 1/s, 1/s]``: a relative change of ``s``, shifts ``tx, ty`` of ``1/s`` metres per
        ``S``-pixel."""
        s = params[:, :1].abs().clamp_min(1e-6)
        return torch.cat([s, 1.0 / s, 1.0 / s], dim=1)


@dataclass(frozen=True)
class PerspectiveCameraModel(CameraModel):
    """A pinhole with a fixed field of view in front of the face (:class:`PerspectiveCamera`).

    Parameters ``[tx, ty, tz]``: the translation of the model origin in OpenCV camera space
    (metres; x right, y down, z away from the camera), i.e. OpenCV's ``t``; the rotation is
    fixed at ``R = diag(1, -1, -1)`` (the head's rotation is its global pose). Focal length
    ``f = min(H, W) / 2 / tan(fov / 2)`` pixels, principal point at the image centre:
    ``px = f * (x + tx) / (tz - z) + W/2``, ``py = f * (ty - y) / (tz - z) + H/2`` for
    model-space ``(x, y, z)``.

    Attributes:
        fov_degrees: field of view across the image's shorter side (as the orthographic model's
            ``[-1, 1]`` square), degrees; for a fit's square crop, the horizontal field of view.
    """

    fov_degrees: float = 12.0

    name: ClassVar[str] = "perspective"
    n_params: ClassVar[int] = 3

    def focal_px(self, image_size) -> float:
        """Focal length in pixels on an image of ``image_size``."""
        return min(_image_hw(image_size)) / 2.0 / math.tan(math.radians(self.fov_degrees) / 2.0)

    def initial(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        """``(B, 3)`` ``[0, 0, 1]``: the head 1 m in front of the camera, centred."""
        return torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype, device=device).expand(batch, 3).clone()

    def camera(self, params: torch.Tensor, image_size, zoom: float = 1.0) -> PerspectiveCamera:
        height, width = _image_hw(image_size)
        batch = params.shape[0]
        dtype, device = params.dtype, params.device
        return PerspectiveCamera(
            focal=torch.full((batch, 2), self.focal_px(image_size) * zoom, dtype=dtype, device=device),
            principal_point=torch.tensor([[width / 2.0, height / 2.0]], dtype=dtype, device=device).expand(batch, 2).clone(),
            R=front_facing_rotation(batch, dtype, device),
            t=params,
            image_size=(height, width),
        )

    def from_similarity(self, scale: torch.Tensor, shift: torch.Tensor, image_size) -> torch.Tensor:
        """``[shift_x, -shift_y, f / (S * scale)]``: the distance at which the pinhole's
        magnification ``f / tz`` equals ``S * scale`` (exact at ``z = 0``)."""
        height, width = _image_hw(image_size)
        distance = self.focal_px(image_size) / (scale * min(height, width) / 2.0)
        return torch.stack([shift[:, 0], -shift[:, 1], distance], dim=1)

    def to_opencv(self, params: torch.Tensor, image_size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact: ``K = [[f, 0, W/2 - 0.5], [0, f, H/2 - 0.5], [0, 0, 1]]``,
        ``R = diag(1, -1, -1)``, ``t = params``."""
        return self.camera(params, image_size).to_opencv()

    def from_opencv(self, K, R, t, image_size) -> torch.Tensor:
        """``t``, after checking that ``K`` has this model's focal length (its field of view)."""
        K, R, t, unbatched = _as_batched_opencv(K, R, t, image_size, self.name)
        height, width = _image_hw(image_size)
        focal = self.focal_px(image_size)
        if ((K[:, 0, 0] - focal).abs() > _FOCAL_RTOL * focal).any():
            side = min(height, width)
            fx = ", ".join(f"{f:.6g}" for f in K[:, 0, 0].tolist())
            fov = ", ".join(f"{math.degrees(2.0 * math.atan(side / 2.0 / f)):.4g}" for f in K[:, 0, 0].tolist())
            raise ValueError(f"{self.name} camera from OpenCV: fx = {fx} px is a field of view of "
                             f"{fov} degrees across the {height} x {width} image's shorter side; "
                             f"this model's is {self.fov_degrees} degrees (f = {focal:.6g} px): use "
                             f"camera_model('perspective', fov_degrees=...)")
        params = t.clone()
        return params[0] if unbatched else params

    def random(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``tx, ty`` normal with 1 cm spread, ``tz`` uniform in [1, 1.1) metres."""
        params = torch.empty(batch, 3)
        params[:, :2] = torch.randn(batch, 2, generator=generator) * 0.01
        params[:, 2] = 1.0 + 0.1 * torch.rand(batch, generator=generator)
        return params

    def step_scale(self, params: torch.Tensor, image_size) -> torch.Tensor:
        """``[d, d, tz]`` with ``d = tz * S / f = tz * tan(fov / 2)``, the metres of a one-``S``-pixel
        shift at the head's distance; a relative change of ``tz`` (the image's size, for a
        head small against its distance)."""
        height, width = _image_hw(image_size)
        tz = params[:, 2:3].abs().clamp_min(1e-6)
        d = tz * (min(height, width) / 2.0 / self.focal_px(image_size))
        return torch.cat([d, d, tz], dim=1)


CAMERA_MODEL_TYPES: dict[str, type[CameraModel]] = {
    model.name: model for model in (OrthographicCameraModel, PerspectiveCameraModel)
}
if tuple(CAMERA_MODEL_TYPES) != CAMERA_MODELS:  # the torch-free list the CLI offers
    raise RuntimeError(f"renderer.choices.CAMERA_MODELS {CAMERA_MODELS} does not match the camera "
                       f"models {tuple(CAMERA_MODEL_TYPES)}")


def camera_model(name: str | CameraModel, **settings) -> CameraModel:
    """The camera model called ``name`` (one of :data:`CAMERA_MODELS`) with its fixed
    ``settings`` (e.g. ``fov_degrees`` for ``"perspective"``); a :class:`CameraModel` passes
    through unchanged (no settings allowed then).

    Raises:
        ValueError: an unknown name, or a setting the model does not have.
    """
    if isinstance(name, CameraModel):
        if settings:
            raise ValueError(f"settings {sorted(settings)} given with a ready camera model {name!r}")
        return name
    if name not in CAMERA_MODEL_TYPES:
        raise ValueError(f"camera must be one of {CAMERA_MODELS}, got {name!r}")
    try:
        return CAMERA_MODEL_TYPES[name](**settings)
    except TypeError as error:
        raise ValueError(f"the {name} camera model takes no such setting: {error}") from None
