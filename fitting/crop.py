"""Square crop around a face's 68 landmarks, resized to the fitting resolution, and its inverse.

The crop square is centred on the landmarks' bounding box; its side is ``scale`` times the mean of
the box's width and height (``scale = 1.25`` keeps the forehead, jaw and a margin). It may extend
beyond the photo; those pixels are padded (edge replication or zeros).

Coordinates: image space and crop space are both pixel-index coordinates with the origin at the
top-left pixel's centre, x right, y down (the convention of landmarks and OpenCV; the renderer's
screen coordinates are half a pixel off, see :mod:`flamefit.renderer.pixel_frames`). Pixel
``i`` covers ``[i - 0.5, i + 0.5]``. The crop square is given in the same continuous
coordinates; its sides map exactly to the crop's outer edges ``-0.5`` and ``R - 0.5``, so the
square's centre lands on ``((R - 1) / 2, (R - 1) / 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

DEFAULT_RESOLUTION = 224
DEFAULT_SCALE = 1.25

_BORDERS = {"edge": cv2.BORDER_REPLICATE, "zeros": cv2.BORDER_CONSTANT,
            "reflect": cv2.BORDER_REFLECT_101}


@dataclass(frozen=True)
class CropTransform:
    """The similarity (scale + translation) from image pixels to crop pixels.

    Attributes:
        matrix: ``(2, 3) float64`` affine, crop = matrix @ [x, y, 1] for an image point.
        inverse: ``(2, 3) float64`` affine, image = inverse @ [u, v, 1] for a crop point.
        resolution: side of the square crop (px).
        box: ``(4,) float64`` the crop square ``x0, y0, x1, y1`` in image space (may extend
            beyond the image).
    """

    matrix: np.ndarray
    inverse: np.ndarray
    resolution: int
    box: np.ndarray

    @property
    def zoom(self) -> float:
        """Crop pixels per image pixel."""
        return float(self.matrix[0, 0])

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` image-space (x, y) points to crop space."""
        return apply_affine(points, self.matrix)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop-space (u, v) points to image space."""
        return apply_affine(points, self.inverse)

    def warp_to_image(self, crop_image: np.ndarray, image_size: tuple[int, int],
                      interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Warp a crop-space image (e.g. a render) back onto the original photo's pixel grid.

        Args:
            crop_image: ``(R, R)`` or ``(R, R, C)`` array (any float or uint8 dtype).
            image_size: ``(H, W)`` of the photo.
            interpolation: an OpenCV interpolation flag.

        Returns:
            ``(H, W)`` or ``(H, W, C)`` array of ``crop_image``'s dtype; pixels outside the crop
            square are 0. Warp an alpha/coverage channel the same way to composite.
        """
        height, width = image_size
        crop_image = np.asarray(crop_image)
        if crop_image.shape[:2] != (self.resolution, self.resolution):
            raise ValueError(f"crop image is {crop_image.shape[:2]}, expected "
                             f"({self.resolution}, {self.resolution})")
        channels = crop_image.shape[2] if crop_image.ndim == 3 else 0
        # cv2 handles at most 4 channels per call; warp wider stacks in slices.
        if channels > 4:
            return np.concatenate([self.warp_to_image(crop_image[..., i:i + 4], image_size,
                                                      interpolation)
                                   for i in range(0, channels, 4)], axis=2)
        warped = cv2.warpAffine(np.ascontiguousarray(crop_image), self.inverse, (width, height),
                                flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        if crop_image.ndim == 3 and warped.ndim == 2:
            warped = warped[..., None]
        return warped

    def paste_onto(self, image: np.ndarray, crop_rgb: np.ndarray,
                   crop_alpha: np.ndarray) -> np.ndarray:
        """Composite a crop-space render over the photo.

        Args:
            image: ``(H, W, 3)`` photo, uint8 or float in [0, 1].
            crop_rgb: ``(R, R, 3)`` float render in [0, 1].
            crop_alpha: ``(R, R)`` float coverage in [0, 1].

        Returns:
            ``(H, W, 3) float32`` in [0, 1].
        """
        base = np.asarray(image, dtype=np.float32)
        if np.asarray(image).dtype == np.uint8:
            base = base / 255.0
        size = base.shape[:2]
        rgb = self.warp_to_image(np.asarray(crop_rgb, dtype=np.float32), size)
        alpha = self.warp_to_image(np.asarray(crop_alpha, dtype=np.float32), size)[..., None]
        return np.clip(rgb * alpha + base * (1.0 - alpha), 0.0, 1.0)

    def inside_image_mask(self, image_size: tuple[int, int]) -> np.ndarray:
        """``(R, R) float32`` mask of crop pixels whose source lies inside the photo (1) or in the
        padding (0), so a loss can ignore the padding."""
        height, width = image_size
        ones = np.ones((height, width), np.float32)
        return cv2.warpAffine(ones, self.matrix, (self.resolution, self.resolution),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)


def crop_box(landmarks: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """The square crop box around ``(N, 2)`` image-space landmarks.

    Returns:
        ``(4,) float64`` square ``x0, y0, x1, y1`` (image space), centred on the
        landmarks' bounding box, side ``scale * (width + height) / 2``.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise ValueError(f"landmarks must be a finite (N, 2) array, got shape {points.shape}")
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    side = scale * float((high - low).sum()) / 2.0
    if side <= 0:
        raise ValueError("landmarks have no extent; cannot crop around them")
    return np.concatenate([centre - side / 2.0, centre + side / 2.0])


def crop_transform(box: np.ndarray, resolution: int = DEFAULT_RESOLUTION) -> CropTransform:
    """The :class:`CropTransform` mapping the square ``box`` (image space) onto a
    ``resolution`` x ``resolution`` crop, box sides onto the crop's outer pixel edges."""
    x0, y0, x1, _ = (float(v) for v in box)
    zoom = resolution / (x1 - x0)
    # The box edge x0 goes to the crop's outer edge -0.5: u = zoom * (x - x0) - 0.5.
    matrix = np.array([[zoom, 0.0, -zoom * x0 - 0.5],
                       [0.0, zoom, -zoom * y0 - 0.5]])
    inverse = np.array([[1.0 / zoom, 0.0, x0 + 0.5 / zoom],
                        [0.0, 1.0 / zoom, y0 + 0.5 / zoom]])
    return CropTransform(matrix=matrix, inverse=inverse, resolution=int(resolution),
                         box=np.asarray(box, dtype=np.float64))


def crop_image(rgb: np.ndarray, landmarks: np.ndarray, resolution: int = DEFAULT_RESOLUTION,
               scale: float = DEFAULT_SCALE, border: str = "edge"
               ) -> tuple[np.ndarray, CropTransform]:
    """Cut the square face crop out of a photo.

    Args:
        rgb: ``(H, W, 3)`` uint8 (0-255) or float (0-1) image.
        landmarks: ``(68, 2)`` (or any ``(N, 2)``) image-space landmarks.
        resolution: side of the output crop (px).
        scale: crop side over the landmarks' mean extent.
        border: padding where the crop leaves the photo: ``"edge"``, ``"zeros"`` or ``"reflect"``.

    Returns:
        ``crop (R, R, 3) float32`` in [0, 1] and the :class:`CropTransform`.
    """
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {tuple(_BORDERS)}, not {border!r}")
    image = np.asarray(rgb)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    else:
        image = image.astype(np.float32)
    transform = crop_transform(crop_box(landmarks, scale), resolution)
    zoom = transform.zoom
    if zoom < 0.7:
        # Low-pass before shrinking so fine texture does not alias (bilinear samples only 2x2).
        sigma = 0.5 * (1.0 / zoom - 1.0)
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    crop = cv2.warpAffine(image, transform.matrix, (resolution, resolution),
                          flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border], borderValue=0)
    return np.clip(crop, 0.0, 1.0), transform


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(..., 2)`` points (numpy)."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def stack_matrices(transforms: list[CropTransform], inverse: bool = False,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, 2, 3)`` tensor of the image-to-crop (or, with ``inverse``, crop-to-image) affines."""
    return torch.as_tensor(np.stack([t.inverse if inverse else t.matrix for t in transforms]),
                           dtype=dtype)


def apply_affine_torch(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable affine map.

    Args:
        points: ``(B, N, 2)`` points.
        matrices: ``(B, 2, 3)`` affines (see :func:`stack_matrices`).

    Returns:
        ``(B, N, 2)`` mapped points.
    """
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]
