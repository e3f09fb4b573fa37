"""Load a user's photo as an 8-bit RGB array, whatever the file holds.

``load_image`` turns any photo Pillow can read into an ``(H, W, 3) uint8`` RGB array in image
space (pixels, origin top-left, x right, y down) and records every conversion it made:

* EXIF orientation is applied, so the array is the photo as a viewer shows it;
* grayscale, palette, CMYK, YCbCr and 16-bit/32-bit/float images become 8-bit RGB;
* transparency (RGBA, LA, PA, palette with transparency) is composited on white;
* huge images are downscaled so the long side is at most ``max_side``; the factor is kept in
  ``LoadedImage.scale`` so that results map back to the original photo's pixels;
* non-images, empty, truncated or corrupt files and images too small to hold a face raise an
  :class:`~flamefit.fitting.errors.InputError` subclass with a one-line message, never a raw traceback.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from flamefit.fitting.errors import ImageTooSmallError, InputError, NotAnImageError
from flamefit.renderer.pixel_frames import resize_index

#: Smallest image side (pixels) that can hold a face worth fitting.
MIN_IMAGE_SIDE = 60

#: Default bound on the long side of a loaded image (pixels).
DEFAULT_MAX_SIDE = 2048

_EXIF_ORIENTATION_TAG = 0x0112

# Pillow raises all of these on truncated or corrupt data, depending on the codec.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  Image.DecompressionBombError)


@dataclass
class LoadedImage:
    """A photo ready for detection and fitting.

    Attributes:
        rgb: ``(H, W, 3) uint8`` RGB pixels in image space, EXIF orientation applied.
        original_size: ``(H0, W0)`` of the photo as a viewer shows it (after EXIF orientation,
            before any downscaling).
        scale: factor applied to the original: a point ``p`` in ``rgb`` is at ``p / scale``
            in the original photo (``1.0`` when the photo was not resized).
        path: the file the photo was read from.
        notes: human-readable notes on every conversion made, e.g. ``"converted from 16-bit"``.
    """

    rgb: np.ndarray
    original_size: tuple[int, int]
    scale: float
    path: Path
    notes: list[str] = field(default_factory=list)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` pixel coordinates (x, y) in ``rgb`` to the original photo's pixels.

        Both use pixel-index coordinates (pixel ``i`` centred on ``i``, like OpenCV and dlib),
        so a resize by ``scale`` maps ``p`` to ``(p + 0.5) / scale - 0.5``
        (:func:`flamefit.renderer.pixel_frames.resize_index`)."""
        return resize_index(points, 1.0 / self.scale)

    def from_original(self, points: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_original`: original photo pixels -> pixels of ``rgb``."""
        return resize_index(points, self.scale)


def load_image(path: str | Path, max_side: int = DEFAULT_MAX_SIDE,
               min_side: int = MIN_IMAGE_SIDE) -> LoadedImage:
    """Read a photo from ``path`` as 8-bit RGB; see the module docstring for what is handled.

    Args:
        path: image file (any format Pillow reads: JPEG, PNG, TIFF, BMP, WebP, GIF, ...).
        max_side: the long side of the result is at most this many pixels (downscaled with a
            Lanczos filter when larger; ``LoadedImage.scale`` records the factor).
        min_side: images whose short side is below this many pixels are refused.

    Returns:
        The :class:`LoadedImage`.

    Raises:
        InputError: the file does not exist or is not a regular file.
        NotAnImageError: the file is empty, not an image, truncated or corrupt.
        ImageTooSmallError: the short side is below ``min_side`` pixels.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found; check the path")
    if not path.is_file():
        raise InputError(path, "is not a file; give the path of an image file")
    if path.stat().st_size == 0:
        raise NotAnImageError(path, "file is empty (0 bytes); re-export or re-download the photo")

    notes: list[str] = []
    with warnings.catch_warnings():
        # Large photos trigger Pillow's decompression-bomb warning; they are downscaled below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except UnidentifiedImageError:
            raise NotAnImageError(path, f"is not an image file Pillow can read ({_sniff(path)}); "
                                        "convert it to JPEG or PNG") from None
        except _DECODE_ERRORS as error:
            raise NotAnImageError(path, f"cannot be opened as an image ({error}); "
                                        "re-export or re-download the photo") from None
        with image:
            stored_size = image.size
            is_16_bit = _is_16_bit_colour(image)  # the tile list is gone once loaded
            orientation = _exif_orientation(image)  # may load a PNG (EXIF after the data)
            _request_reduced_decode(image, max_side)
            try:
                image.load()
            except _DECODE_ERRORS as error:
                raise NotAnImageError(path, f"image data is truncated or corrupt ({error}); "
                                            "re-export or re-download the photo") from None
            rgb = _to_rgb8(image, notes, is_16_bit)

    if orientation not in (None, 1):
        rgb = _apply_exif_orientation(rgb, orientation)
        notes.append(f"EXIF-rotated (orientation {orientation})")
    width0, height0 = stored_size
    if orientation in (5, 6, 7, 8):
        width0, height0 = height0, width0
    original_size = (height0, width0)

    if min(original_size) < min_side:
        raise ImageTooSmallError(
            path, f"image is only {width0}x{height0} px; a face needs at least {min_side} px, "
                  "use a larger photo")

    rgb, scale = _fit_long_side(rgb, original_size, max_side, notes)
    return LoadedImage(rgb=np.ascontiguousarray(rgb), original_size=original_size, scale=scale,
                       path=path, notes=notes)


def _sniff(path: Path) -> str:
    """Say in a few words what a file that is not an image seems to be."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"%PDF"):
        return "it looks like a PDF"
    if head[4:8] == b"ftyp" and head[8:12] not in (b"heic", b"heix", b"mif1", b"avif"):
        return "it looks like a video"
    if head[4:8] == b"ftyp":
        return "it looks like HEIC/AVIF, which needs the pillow-heif plugin"
    try:
        head.decode("utf-8")
        return "it looks like a text file"
    except UnicodeDecodeError:
        return "unknown format"


def _exif_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag (1..8) of ``image``, or ``None`` when absent or unreadable."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except _DECODE_ERRORS:
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _request_reduced_decode(image: Image.Image, max_side: int) -> None:
    """Let the JPEG decoder decode huge photos at 1/2, 1/4 or 1/8 size (much faster).

    The decoder keeps a size at least as large as requested, so the final resize still sets
    the exact size.
    """
    width, height = image.size
    long_side = max(width, height)
    if image.format == "JPEG" and long_side > 2 * max_side:
        factor = max_side / long_side
        image.draft(image.mode, (int(np.ceil(width * factor)), int(np.ceil(height * factor))))


def _is_16_bit_colour(image: Image.Image) -> bool:
    """Whether a not yet loaded colour image is stored with 16 bits per channel."""
    rawmode = image.tile[0][-1] if image.tile else None
    if isinstance(rawmode, tuple):
        rawmode = rawmode[0]
    return isinstance(rawmode, str) and ";16" in rawmode and image.mode in ("RGB", "RGBA", "LA")


def _to_rgb8(image: Image.Image, notes: list[str], is_16_bit: bool = False) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to ``(H, W, 3) uint8`` RGB, noting conversions.

    ``is_16_bit`` says the (colour) image was stored at 16 bits per channel; Pillow has already
    reduced it to 8 bits.
    """
    mode = image.mode
    if is_16_bit:
        notes.append("converted from 16-bit")
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        notes.append("converted from palette")
        mode = image.mode
    if mode == "PA":
        image = image.convert("RGBA")
        notes.append("converted from palette")
        mode = "RGBA"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_gray_to_rgb8(np.asarray(image), mode, notes)
    if mode in ("RGBA", "LA", "RGBa", "La"):
        return _composite_on_white(image.convert("RGBA"), mode, notes)
    if mode == "CMYK":
        notes.append("converted from CMYK")
        return np.asarray(_cmyk_to_rgb(image))
    if mode in ("L", "1"):
        notes.append("grayscale replicated to RGB")
    elif mode != "RGB":
        notes.append(f"converted from {mode}")
    return np.asarray(image.convert("RGB"))


def _high_depth_gray_to_rgb8(values: np.ndarray, mode: str, notes: list[str]) -> np.ndarray:
    """Map a 16-bit, 32-bit integer or float grayscale array to ``(H, W, 3) uint8``."""
    values = values.astype(np.float64)
    if mode == "F":
        top = 1.0 if np.nanmax(values) <= 1.0 else 255.0
        notes.append("converted from floating-point grayscale")
    else:
        top = 65535.0 if np.nanmax(values) <= 65535 else float(np.nanmax(values))
        notes.append("converted from 16-bit" if top == 65535.0 else "converted from 32-bit")
        notes.append("grayscale replicated to RGB")
    gray = np.clip(np.nan_to_num(values / top * 255.0), 0, 255).round().astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _composite_on_white(image: Image.Image, mode: str, notes: list[str]) -> np.ndarray:
    """Composite an RGBA Pillow image on a white background; ``(H, W, 3) uint8``."""
    rgba = np.asarray(image).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    if np.all(alpha == 1.0):
        notes.append(f"dropped the opaque alpha channel of {mode}")
        return rgba[..., :3].astype(np.uint8)
    notes.append(f"{mode} composited on white")
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb.round(), 0, 255).astype(np.uint8)


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK to RGB, through the embedded ICC profile when there is one (Pillow's LittleCMS)."""
    profile_bytes = image.info.get("icc_profile")
    if profile_bytes:
        try:
            import io

            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
            target = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(image, source, target, outputMode="RGB")
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass
    return image.convert("RGB")


def _apply_exif_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2..8) to an ``(H, W, C)`` array, as a photo viewer does."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1]
    if orientation == 5:
        return rgb.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(rgb, k=-1)
    if orientation == 7:
        return rgb[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(rgb, k=1)
    return rgb


def _fit_long_side(rgb: np.ndarray, original_size: tuple[int, int], max_side: int,
                   notes: list[str]) -> tuple[np.ndarray, float]:
    """Resize ``rgb`` so its long side is ``min(max_side, original long side)``.

    The array may already be smaller than the original (reduced JPEG decoding); the returned
    scale is always relative to ``original_size``.
    """
    height0, width0 = original_size
    long0 = max(height0, width0)
    if long0 <= max_side and rgb.shape[:2] == original_size:
        return rgb, 1.0
    scale = min(1.0, max_side / long0)
    size = (max(1, round(width0 * scale)), max(1, round(height0 * scale)))
    resized = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    notes.append(f"downscaled from {width0}x{height0} to {size[0]}x{size[1]}")
    return np.asarray(resized), scale
