"""The two pixel frames of image space, and the conversions between them (written once).

Both frames are pixels with the origin at the image's top-left, x right, y down; they differ by
half a pixel:

* **pixel-index coordinates** (OpenCV, dlib, photos, crops, detected and saved landmarks): the
  centre of pixel ``(row i, column j)`` is the point ``(j, i)``; the image spans
  ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
* **screen coordinates** (the renderer: cameras' ``project``, the rasteriser, rendered
  landmarks): the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``; the image spans
  ``[0, W] x [0, H]``, so scaling an image scales its screen coordinates.

Every function takes ``(..., 2)`` points (or ``(..., D)``: only the first two columns are x, y,
but all are shifted alike, so pass x, y only) as a torch tensor (returned as a tensor of the same
dtype and device, differentiable) or anything numpy reads (returned as float64 numpy).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "PIXEL_CENTRE",
    "index_to_screen",
    "screen_to_index",
    "resize_index",
    "resize_index_matrix",
]

#: Screen coordinate of pixel 0's centre (pixel-index coordinate 0).
PIXEL_CENTRE = 0.5


def _points(points):
    return points if isinstance(points, torch.Tensor) else np.asarray(points, dtype=np.float64)


def index_to_screen(points):
    """Pixel-index coordinates -> screen coordinates: ``p + 0.5``.

    Args:
        points: ``(..., 2)`` x, y in pixel-index coordinates (numpy-like or torch).

    Returns:
        ``(..., 2)`` x, y in screen coordinates (torch in, torch out; else float64 numpy).
    """
    return _points(points) + PIXEL_CENTRE


def screen_to_index(points):
    """Screen coordinates -> pixel-index coordinates: ``p - 0.5``.

    Args:
        points: ``(..., 2)`` x, y in screen coordinates (numpy-like or torch).

    Returns:
        ``(..., 2)`` x, y in pixel-index coordinates (torch in, torch out; else float64 numpy).
    """
    return _points(points) - PIXEL_CENTRE


def resize_index(points, factor: float):
    """Where points land when their image is resized by ``factor``, in pixel-index coordinates.

    Resizing scales screen coordinates (the image's outer edges map onto each other), so in
    pixel-index coordinates ``p -> (p + 0.5) * factor - 0.5``.

    Args:
        points: ``(..., 2)`` x, y pixel-index coordinates in the image before resizing.
        factor: new size over old size (the same along x and y).

    Returns:
        ``(..., 2)`` pixel-index coordinates in the resized image.
    """
    return screen_to_index(index_to_screen(points) * factor)


def resize_index_matrix(factor: float) -> np.ndarray:
    """``(3, 3) float64`` homogeneous affine of :func:`resize_index` (acts on ``[x, y, 1]``)."""
    shift = PIXEL_CENTRE * factor - PIXEL_CENTRE
    return np.array([[factor, 0.0, shift], [0.0, factor, shift], [0.0, 0.0, 1.0]])
