"""Pictures for people: shape and textured renders, overlays, landmarks, sheets, animations.

Rendering functions take tensors and return tensors ``(B, 3, H, W)`` in [0, 1]; drawing
functions work on numpy ``(H, W, 3)`` uint8 RGB images (convert with :func:`to_uint8`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from flamefit.renderer.pixel_frames import screen_to_index
from flamefit.renderer.render import render_shape, render_textured
from flamefit.utils import new_file_mode

__all__ = [
    "DETECTED_COLOR",
    "FITTED_COLOR",
    "shape_image",
    "textured_image",
    "overlay",
    "to_uint8",
    "draw_landmarks",
    "make_sheet",
    "save_animation",
]

log = logging.getLogger(__name__)

DETECTED_COLOR = (40, 220, 60)  # RGB green: landmarks found in the photo
FITTED_COLOR = (235, 50, 50)  # RGB red: landmarks of the fitted model


def shape_image(vertices: torch.Tensor, camera, faces: torch.Tensor, background: float = 1.0, **kwargs) -> torch.Tensor:
    """Grey shaded render with a fixed light, ``(B, 3, H, W)`` in [0, 1] on a plain background.

    Args:
        vertices: ``(B, V, 3)`` model space. camera: orthographic or perspective camera.
        faces: ``(F, 3)`` int64. kwargs: passed to :func:`flamefit.renderer.render.render_shape`.
    """
    with torch.no_grad():
        out = render_shape(vertices, camera, faces, background=background, **kwargs)
    return out.image.clamp(0.0, 1.0)


def textured_image(
    vertices: torch.Tensor, camera, faces, vt, ft, albedo_texture, light, background: float = 0.0, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured, lit render ``(B, 3, H, W)`` in [0, 1] and its alpha ``(B, 1, H, W)``."""
    with torch.no_grad():
        out = render_textured(vertices, camera, faces, vt, ft, albedo_texture, light, background=background, **kwargs)
    return out.image.clamp(0.0, 1.0), out.alpha


def overlay(render: torch.Tensor, alpha: torch.Tensor, photo: torch.Tensor, opacity: float = 0.7) -> torch.Tensor:
    """Alpha-blend a render over a photo: ``photo * (1 - a) + render * a``, ``a = opacity * alpha``.

    Args:
        render: ``(B, 3, H, W)`` in [0, 1]. alpha: ``(B, 1, H, W)`` coverage.
        photo: ``(B, 3, H, W)`` in [0, 1], same size.
    """
    weight = alpha * opacity
    return photo * (1.0 - weight) + render * weight


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` or ``(H, W, 3)`` float in [0, 1] (tensor or array) -> ``(H, W, 3)`` uint8."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float()
        if image.dim() == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def draw_landmarks(
    image: np.ndarray,
    detected: np.ndarray | None = None,
    fitted: np.ndarray | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """Draw 68 landmarks: detected ones as green dots, fitted ones as red crosses.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (not modified).
        detected, fitted: ``(68, 2)`` (or any ``(K, 2)``) pixel coordinates in our screen
            convention (pixel centres at +0.5), or None.
        radius: marker size in pixels (default scales with the image).

    Returns:
        A new ``(H, W, 3)`` uint8 image.
    """
    canvas = np.ascontiguousarray(image.copy())
    size = radius or max(1, round(min(canvas.shape[:2]) / 160))
    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    scale = 1 << shift
    if detected is not None:
        for x, y in screen_to_index(np.asarray(detected, dtype=np.float64).reshape(-1, 2)):
            if np.isfinite(x) and np.isfinite(y):
                centre = (int(round(x * scale)), int(round(y * scale)))
                cv2.circle(canvas, centre, size * scale, DETECTED_COLOR, -1, cv2.LINE_AA, shift)
    if fitted is not None:
        for x, y in screen_to_index(np.asarray(fitted, dtype=np.float64).reshape(-1, 2)):
            if np.isfinite(x) and np.isfinite(y):
                cx, cy = x * scale, y * scale
                d = (size + 1) * scale
                cv2.line(canvas, (int(cx - d), int(cy - d)), (int(cx + d), int(cy + d)), FITTED_COLOR, 1, cv2.LINE_AA, shift)
                cv2.line(canvas, (int(cx - d), int(cy + d)), (int(cx + d), int(cy - d)), FITTED_COLOR, 1, cv2.LINE_AA, shift)
    return canvas


def make_sheet(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int | None = None) -> np.ndarray:
    """Place images side by side (wrapping after ``columns``), each with a label strip above it.

    Args:
        images: ``(H_i, W_i, 3)`` uint8 RGB images; each is resized to the first one's height.
        labels: one caption per image (or None).
        columns: images per row (default: all in one row).

    Returns:
        ``(H_sheet, W_sheet, 3)`` uint8 RGB.
    """
    if not images:
        raise ValueError("make_sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    height = images[0].shape[0]
    tiles = []
    label_h = max(18, height // 12)
    for image, label in zip(images, labels):
        image = to_uint8(image)
        if image.shape[0] != height:
            width = max(1, round(image.shape[1] * height / image.shape[0]))
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        strip = np.full((label_h, image.shape[1], 3), 255, np.uint8)
        font_scale = label_h / 40.0
        cv2.putText(strip, label, (4, int(label_h * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (20, 20, 20), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([strip, image], axis=0))
    columns = columns or len(tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start:start + columns]
        row_width = sum(t.shape[1] for t in tiles[:columns])
        joined = np.concatenate(row, axis=1)
        if joined.shape[1] < row_width:
            pad = np.full((joined.shape[0], row_width - joined.shape[1], 3), 255, np.uint8)
            joined = np.concatenate([joined, pad], axis=1)
        rows.append(joined)
    return np.concatenate(rows, axis=0)


def save_animation(frames: Sequence[np.ndarray], path: str | Path, fps: float = 15.0) -> Path:
    """Write frames as MP4 (needs ``imageio-ffmpeg``) or GIF.

    A ``.mp4`` path falls back to a ``.gif`` next to it, with a log line, when imageio-ffmpeg is
    missing. The file is written to a temporary name and moved into place.

    Args:
        frames: ``(H, W, 3)`` uint8 RGB frames of one size.
        path: target ``.mp4`` or ``.gif``.
        fps: frames per second.

    Returns:
        The path actually written.
    """
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("save_animation needs at least one frame")
    path = Path(path)
    frames = [to_uint8(frame) for frame in frames]
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            gif = path.with_suffix(".gif")
            log.warning("imageio-ffmpeg is not installed; writing %s instead of %s (pip install imageio-ffmpeg)", gif, path)
            path = gif
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, new_file_mode())  # mkstemp's 0600 -> what open() would give
    os.close(fd)
    try:
        if path.suffix.lower() == ".mp4":
            imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)
        else:
            imageio.mimwrite(tmp, frames, duration=1.0 / fps, loop=0)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
