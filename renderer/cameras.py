"""Cameras: model space -> screen space, and their OpenCV form.

Spaces
------
* **Model space**: FLAME's; metres, x to the subject's left (viewer's right), y up, +z toward
  the viewer.
* **Screen space**: ``(x px, y px, depth)``; pixels with the origin at the top-left corner of the
  image, x right, y down, pixel centres at integer + 0.5. *Smaller depth is nearer.*
* **OpenCV**: camera space looks down +z_cam with y_cam down and x_cam right; image points from
  ``cv2.projectPoints`` put pixel centres at *integers*, so
  ``our_px = opencv_px + 0.5`` (same for y). The ``K`` we export uses OpenCV's convention
  (``cx_opencv = cx - 0.5``), so ``cv2.projectPoints(X, rvec(R), t, K, None) + 0.5`` equals our
  projection.

Both cameras are batched (one camera per batch element) and differentiable in their
parameters. ``project`` maps ``(B, N, 3)`` model-space points to ``(B, N, 3)`` screen space;
``unproject`` is its exact inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from flamefit.renderer.device_constants import device_constant

__all__ = [
    "OrthographicCamera",
    "PerspectiveCamera",
    "front_facing_rotation",
    "FRONT_FACING_ROTATION",
]

# Model space (y up, +z to the viewer) -> OpenCV camera space (y down, looking down +z):
# a half turn about the x axis.
FRONT_FACING_ROTATION = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def front_facing_rotation(batch: int = 1, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(B, 3, 3)`` OpenCV rotation of a camera in front of the face: ``diag(1, -1, -1)``."""
    rotation = device_constant(FRONT_FACING_ROTATION, dtype, device)
    return rotation.expand(batch, 3, 3).clone()


def _image_hw(image_size) -> tuple[int, int]:
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {image_size}")
    return height, width


@dataclass
class OrthographicCamera:
    """DECA's weak-perspective camera ``[s, tx, ty]`` (``batch_orth_proj``).

    With model-space point ``(x, y, z)`` and parameters ``(s, tx, ty)``:

    * normalised device coordinates (DECA's ``batch_orth_proj``, then its flip of y and z):
      ``x' = s * (x + tx)``, ``y' = s * (y + ty)``, ``z' = s * z``;
    * pixels, with ``S = min(H, W) / 2``:
      ``px = W / 2 + S * x'``, ``py = H / 2 - S * y'``, ``depth = -z'``.

    For a square image this is exactly DECA's ``px = (x' + 1) * W / 2``,
    ``py = (1 - y') * H / 2``; a non-square image keeps square pixels and centres the
    ``[-1, 1]`` square on the shorter side. Depth is in normalised units, of any sign; only its
    order matters (smaller = nearer). Rasterise with ``perspective_correct=False``.

    Attributes:
        params: ``(B, 3)`` ``[s, tx, ty]``; ``tx, ty`` in model units (metres), ``s`` in NDC
            per model unit.
        image_size: ``(H, W)`` pixels.
    """

    params: torch.Tensor
    image_size: tuple[int, int]

    is_perspective = False
    near = 0.0

    def __post_init__(self) -> None:
        if self.params.dim() != 2 or self.params.shape[1] != 3:
            raise ValueError(f"orthographic params must be (B, 3) [s, tx, ty], got {tuple(self.params.shape)}")
        self.image_size = _image_hw(self.image_size)

    @property
    def half_extent(self) -> float:
        """``S = min(H, W) / 2``: pixels per NDC unit."""
        return min(self.image_size) / 2.0

    def _split(self):
        s = self.params[:, 0, None]
        tx = self.params[:, 1, None]
        ty = self.params[:, 2, None]
        return s, tx, ty

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` model space -> ``(B, N, 3)`` screen space ``(px, py, depth)``."""
        height, width = self.image_size
        s, tx, ty = self._split()
        half = self.half_extent
        px = width / 2.0 + half * s * (points[..., 0] + tx)
        py = height / 2.0 - half * s * (points[..., 1] + ty)
        depth = -s * points[..., 2]
        return torch.stack([px, py, depth], dim=-1)

    def unproject(self, screen: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` screen space ``(px, py, depth)`` -> ``(B, N, 3)`` model space."""
        height, width = self.image_size
        s, tx, ty = self._split()
        half = self.half_extent
        x = (screen[..., 0] - width / 2.0) / (half * s) - tx
        y = (height / 2.0 - screen[..., 1]) / (half * s) - ty
        z = -screen[..., 2] / s
        return torch.stack([x, y, z], dim=-1)

    def affine_matrix(self) -> torch.Tensor:
        """Exact ``(B, 2, 4)`` projection in our pixel convention: ``[px, py] = P @ [x, y, z, 1]``.

        ``P = [[S s, 0, 0, S s tx + W/2], [0, -S s, 0, -S s ty + H/2]]``. Subtract 0.5 from the
        last column for OpenCV's integer-centre pixels.
        """
        height, width = self.image_size
        s, tx, ty = (t.squeeze(1) for t in self._split())
        half = self.half_extent
        zeros = torch.zeros_like(s)
        row_x = torch.stack([half * s, zeros, zeros, half * s * tx + width / 2.0], dim=-1)
        row_y = torch.stack([zeros, -half * s, zeros, -half * s * ty + height / 2.0], dim=-1)
        return torch.stack([row_x, row_y], dim=1)

    def to_opencv(self, distance: float = 1000.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A pinhole ``K (B,3,3), R (B,3,3), t (B,3)`` (OpenCV convention) approximating this camera.

        The pinhole camera sits ``distance`` model units (metres) in front of the face on the
        +z axis, looking at it: ``R = diag(1, -1, -1)``, ``t = (tx, -ty, distance)``,
        ``fx = fy = S * s * distance``, ``cx = W/2 - 0.5``, ``cy = H/2 - 0.5`` (OpenCV pixels).
        Each pixel coordinate of a point's pinhole projection differs from the orthographic one
        by ``|p_ortho - c| * z / (distance - z)`` pixels, where ``p_ortho - c`` is that
        coordinate's offset from the image centre and ``z`` the point's model-space depth. For
        the default ``distance = 1000`` m and a head (``|z| <= 0.2`` m) the factor is at most
        ``2.0e-4``: at most 0.023 px per coordinate for points inside a 224 x 224 image, 0.052 px
        inside 512 x 512 and 0.103 px inside 1024 x 1024. Use
        :meth:`affine_matrix` where exactness matters.
        """
        height, width = self.image_size
        s, tx, ty = (t.squeeze(1) for t in self._split())
        batch = self.params.shape[0]
        focal = self.half_extent * s * distance
        K = torch.zeros(batch, 3, 3, dtype=self.params.dtype, device=self.params.device)
        K[:, 0, 0] = focal
        K[:, 1, 1] = focal
        K[:, 0, 2] = width / 2.0 - 0.5
        K[:, 1, 2] = height / 2.0 - 0.5
        K[:, 2, 2] = 1.0
        R = front_facing_rotation(batch, self.params.dtype, self.params.device)
        t = torch.stack([tx, -ty, torch.full_like(tx, distance)], dim=-1)
        return K, R, t


@dataclass
class PerspectiveCamera:
    """Pinhole camera in OpenCV's convention.

    Model space -> camera space: ``X_cam = R @ X + t`` (camera looks down +z_cam, y_cam down).
    Camera -> pixels (our convention, centres at +0.5):
    ``px = fx * X_cam / Z_cam + cx``, ``py = fy * Y_cam / Z_cam + cy``, ``depth = Z_cam``.
    A camera in front of the face at distance d is ``R = diag(1, -1, -1)``, ``t = (0, 0, d)``
    (see :func:`front_facing_rotation`); FLAME's +z (toward the viewer) becomes -z_cam.
    Points at ``Z_cam <= near`` are behind the camera: the rasteriser drops triangles touching
    them (rasterise with ``perspective_correct=True, near=camera.near``).

    Attributes:
        focal: ``(B, 2)`` ``(fx, fy)`` in pixels (a ``(B,)`` or ``(B, 1)`` tensor means fx = fy).
        principal_point: ``(B, 2)`` ``(cx, cy)`` in our pixel convention (image centre =
            ``(W/2, H/2)``).
        R: ``(B, 3, 3)`` rotation model -> camera.
        t: ``(B, 3)`` translation, model units (metres).
        image_size: ``(H, W)``.
        near: near-plane depth in model units.
    """

    focal: torch.Tensor
    principal_point: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    image_size: tuple[int, int]
    near: float = 1e-3

    is_perspective = True

    def __post_init__(self) -> None:
        if self.focal.dim() == 1:
            self.focal = self.focal[:, None]
        if self.focal.shape[-1] == 1:
            self.focal = self.focal.expand(-1, 2)
        if self.principal_point.dim() != 2 or self.principal_point.shape[1] != 2:
            raise ValueError(f"principal_point must be (B, 2), got {tuple(self.principal_point.shape)}")
        if self.R.dim() != 3 or self.R.shape[1:] != (3, 3):
            raise ValueError(f"R must be (B, 3, 3), got {tuple(self.R.shape)}")
        if self.t.dim() != 2 or self.t.shape[1] != 3:
            raise ValueError(f"t must be (B, 3), got {tuple(self.t.shape)}")
        self.image_size = _image_hw(self.image_size)

    @classmethod
    def in_front(
        cls,
        batch: int,
        image_size: tuple[int, int],
        distance: float = 1.0,
        fov_degrees: float = 12.0,
        dtype=torch.float32,
        device=None,
    ) -> PerspectiveCamera:
        """A camera ``distance`` metres in front of the model origin, horizontal field of view
        ``fov_degrees``, principal point at the image centre."""
        height, width = _image_hw(image_size)
        focal = width / 2.0 / math.tan(math.radians(fov_degrees) / 2.0)
        return cls(
            focal=torch.full((batch, 2), focal, dtype=dtype, device=device),
            principal_point=torch.tensor([[width / 2.0, height / 2.0]], dtype=dtype, device=device).expand(batch, 2).clone(),
            R=front_facing_rotation(batch, dtype, device),
            t=torch.tensor([[0.0, 0.0, distance]], dtype=dtype, device=device).expand(batch, 3).clone(),
            image_size=(height, width),
        )

    def to_camera_space(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` model space -> ``(B, N, 3)`` OpenCV camera space."""
        return points @ self.R.transpose(1, 2) + self.t[:, None, :]

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` model space -> ``(B, N, 3)`` screen space ``(px, py, Z_cam)``."""
        cam = self.to_camera_space(points)
        z = cam[..., 2]
        px = self.focal[:, 0, None] * cam[..., 0] / z + self.principal_point[:, 0, None]
        py = self.focal[:, 1, None] * cam[..., 1] / z + self.principal_point[:, 1, None]
        return torch.stack([px, py, z], dim=-1)

    def unproject(self, screen: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` screen space ``(px, py, Z_cam)`` -> ``(B, N, 3)`` model space."""
        z = screen[..., 2]
        x = (screen[..., 0] - self.principal_point[:, 0, None]) / self.focal[:, 0, None] * z
        y = (screen[..., 1] - self.principal_point[:, 1, None]) / self.focal[:, 1, None] * z
        cam = torch.stack([x, y, z], dim=-1)
        return (cam - self.t[:, None, :]) @ self.R  # R^-1 = R^T; row-vector form

    def to_opencv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``K (B,3,3), R (B,3,3), t (B,3)`` in OpenCV's convention (``cx_cv = cx - 0.5``)."""
        batch = self.R.shape[0]
        K = torch.zeros(batch, 3, 3, dtype=self.R.dtype, device=self.R.device)
        K[:, 0, 0] = self.focal[:, 0]
        K[:, 1, 1] = self.focal[:, 1]
        K[:, 0, 2] = self.principal_point[:, 0] - 0.5
        K[:, 1, 2] = self.principal_point[:, 1] - 0.5
        K[:, 2, 2] = 1.0
        return K, self.R, self.t
