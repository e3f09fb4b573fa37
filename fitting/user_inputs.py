"""Landmarks and masks a user supplies instead of (or on top of) automatic detection.

Landmarks: 68 (x, y) points in image space (pixels, origin top-left, x right, y down) of the photo
they belong to, from

* ``.npy``: an array of shape ``(68, 2)`` (or ``(68, 3)``, the third column is dropped, or
  ``(1, 68, 2)``);
* ``.txt`` / ``.csv``: 68 lines of ``x y`` (or ``x,y``; extra columns dropped), or one line of
  136 numbers ``x0 y0 x1 y1 ...``;
* ``.pts``: the iBUG 300-W format::

      version: 1
      n_points: 68
      {
      x y
      ...
      }

  300-W's ``.pts`` files count pixels from 1 (the centre of the top-left pixel is ``(1, 1)``);
  ``load_landmarks(..., pts_one_based=True)`` subtracts 1 to give the toolkit's 0-based pixel
  indices (``flamefit evaluate`` does by default); the default ``False`` reads them unchanged;
* ``.mat``: AFLW2000-3D's annotation, whose ``pt3d_68`` variable is ``(3, 68)`` (rows x, y, z;
  x and y are read unchanged, z is dropped); read with ``scipy.io.loadmat``.

Masks: an image file (any format ``load_image`` reads, 0/255, 0/1 or grayscale) or a ``.npy``
array, returned as ``(H, W) float32`` in [0, 1] that must match the photo's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from flamefit.fitting.errors import BadLandmarksError, BadMaskError
from flamefit.flame.landmark_sets import N_LANDMARKS
#: Points may lie this far outside the image (as a fraction of its size): chins and jaw lines
#: of tight crops legitimately do.
OUTSIDE_TOLERANCE = 0.1


#: The suffixes :func:`load_landmarks` reads.
LANDMARK_SUFFIXES = (".npy", ".pts", ".txt", ".csv", ".lmk", ".dat", ".mat")
#: The variable of an AFLW2000-3D ``.mat`` file holding its 68 points, ``(3, 68)``.
MAT_LANDMARKS_KEY = "pt3d_68"


def load_landmarks(path: str | Path, image_size: tuple[int, int] | None = None,
                   pts_one_based: bool = False) -> np.ndarray:
    """Read 68 user landmarks from a ``.npy``, ``.txt``/``.csv``, ``.pts`` or ``.mat`` file.

    Args:
        path: the file.
        image_size: ``(H, W)`` of the photo the points belong to; when given, points far outside
            it (beyond ``OUTSIDE_TOLERANCE``) are refused.
        pts_one_based: a ``.pts`` file counts pixels from 1 (300-W's convention): subtract 1.
            Other formats are always read as 0-based pixel indices.

    Returns:
        ``(68, 2) float64`` (x, y) pixels in image space.

    Raises:
        BadLandmarksError: unreadable file, wrong count or shape, NaN/inf, or outside the image.
    """
    path = Path(path)
    if not path.is_file():
        raise BadLandmarksError(path, "landmark file not found; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            points = np.load(path, allow_pickle=False)
        elif suffix == ".pts":
            points = _read_pts(path)
            if pts_one_based:
                points = points - np.where(np.arange(points.shape[-1]) < 2, 1.0, 0.0)
        elif suffix in (".txt", ".csv", ".lmk", ".dat"):
            points = _read_text_points(path.read_text(encoding="utf-8", errors="replace"), path)
        elif suffix == ".mat":
            points = _read_mat(path)
        else:
            raise BadLandmarksError(path, f"unknown landmark format {suffix!r}; "
                                          "use .npy, .txt, .pts or .mat")
    except BadLandmarksError:
        raise
    except (OSError, ValueError, EOFError, NotImplementedError) as error:
        raise BadLandmarksError(path, f"cannot read landmarks ({error}); expected 68 x y pairs"
                                ) from None
    return check_landmarks(points, image_size=image_size, path=path)


def check_landmarks(points: np.ndarray, image_size: tuple[int, int] | None = None,
                    path: str | Path | None = None) -> np.ndarray:
    """Validate user landmarks and return them as ``(68, 2) float64`` (x, y) pixels.

    Accepts ``(68, 2)``, ``(68, 3)`` (z dropped) and ``(1, 68, 2|3)``.

    Raises:
        BadLandmarksError: wrong shape, non-numeric, NaN/inf, or outside the image.
    """
    try:
        points = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadLandmarksError(path, "landmarks are not numbers; expected a (68, 2) array"
                                ) from None
    if points.ndim == 3 and points.shape[0] == 1:
        points = points[0]
    if points.ndim != 2 or points.shape[0] != N_LANDMARKS or points.shape[1] not in (2, 3):
        raise BadLandmarksError(path, f"landmarks have shape {points.shape}; expected "
                                      f"({N_LANDMARKS}, 2) (x, y) pixels in the 68-point layout")
    points = points[:, :2]
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise BadLandmarksError(path, f"{bad.sum()} landmarks are NaN or infinite (first: point "
                                      f"{int(np.flatnonzero(bad)[0])}); give all 68 points")
    if image_size is not None:
        height, width = image_size
        margin_x, margin_y = OUTSIDE_TOLERANCE * width, OUTSIDE_TOLERANCE * height
        outside = ((points[:, 0] < -margin_x) | (points[:, 0] > width + margin_x)
                   | (points[:, 1] < -margin_y) | (points[:, 1] > height + margin_y))
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise BadLandmarksError(
                path, f"{outside.sum()} landmarks lie outside the {width}x{height} image (point "
                      f"{first} at x={points[first, 0]:.1f}, y={points[first, 1]:.1f}); "
                      "are they in pixels of this photo, x before y?")
    if np.ptp(points, axis=0).min() < 1.0:
        raise BadLandmarksError(path, "all landmarks lie on one line or point; "
                                      "are they normalised instead of in pixels?")
    return points


def save_pts(path: str | Path, points: np.ndarray) -> None:
    """Write ``(N, 2)`` points in the iBUG ``.pts`` format."""
    points = np.asarray(points, dtype=np.float64)
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    lines += [f"{x:.3f} {y:.3f}" for x, y in points]
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_mask(path: str | Path, image_size: tuple[int, int]) -> np.ndarray:
    """Read a user mask (image file or ``.npy``) as ``(H, W) float32`` in [0, 1].

    Image masks: 8-bit 0/255 or 0/1 (detected from the maximum), grayscale or RGB (averaged), or
    16-bit; an alpha channel, when present and not all opaque, is the mask. ``.npy`` masks: bool,
    0/1 or 0/255 arrays of shape ``(H, W)`` or ``(H, W, 1)``.

    Args:
        path: the mask file.
        image_size: ``(H, W)`` of the photo the mask belongs to.

    Raises:
        BadMaskError: unreadable, wrong size (both sizes are named), NaN, or negative values.
    """
    path = Path(path)
    if not path.is_file():
        raise BadMaskError(path, "mask file not found; check the path")
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = _read_mask_image(path)
    except (OSError, ValueError, EOFError, UnidentifiedImageError) as error:
        raise BadMaskError(path, f"cannot read the mask ({error}); give a PNG or .npy") from None
    return check_mask(values, image_size, path=path)


def check_mask(values: np.ndarray, image_size: tuple[int, int],
               path: str | Path | None = None) -> np.ndarray:
    """Validate a mask array and return it as ``(H, W) float32`` in [0, 1].

    Raises:
        BadMaskError: wrong shape or size, NaN, negative or over-255 values.
    """
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise BadMaskError(path, f"mask has shape {values.shape}; expected a single-channel "
                                 "(H, W) mask")
    height, width = image_size
    if values.shape != (height, width):
        raise BadMaskError(path, f"mask is {values.shape[1]}x{values.shape[0]} but the image is "
                                 f"{width}x{height}; give a mask of the image's size")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise BadMaskError(path, "mask holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 65535:
        raise BadMaskError(path, f"mask values span {low:g}..{high:g}; expected 0/1 or 0/255")
    top = 1.0 if high <= 1.0 else 255.0 if high <= 255.0 else 65535.0
    return np.clip(values / top, 0.0, 1.0)


def _read_mask_image(path: Path) -> np.ndarray:
    """A mask image as a 2-D array of its raw values (alpha or mean of the colour channels)."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            alpha = np.asarray(image.convert("RGBA"))[..., 3]
            if alpha.min() < 255:
                return alpha
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return np.asarray(image)
        if image.mode == "1":
            return np.asarray(image).astype(np.uint8)
        return np.asarray(image.convert("RGB")).astype(np.float32).mean(axis=2)


def _read_pts(path: Path) -> np.ndarray:
    """Points of an iBUG ``.pts`` file as ``(N, 2)``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if "{" not in text or "}" not in text:
        raise BadLandmarksError(path, "not an iBUG .pts file (no '{ }' block); expected "
                                      "'version: 1', 'n_points: 68', '{', 68 'x y' lines, '}'")
    header, _, rest = text.partition("{")
    body = rest.partition("}")[0]
    points = _read_text_points(body, path)
    for line in header.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "n_points" and value.strip().isdigit():
            if int(value) != len(points):
                raise BadLandmarksError(path, f"header says n_points: {int(value)} but the file "
                                              f"holds {len(points)} points")
    return points


def _read_mat(path: Path) -> np.ndarray:
    """The ``(68, 3)`` points of an AFLW2000-3D ``.mat`` file (its ``pt3d_68``, transposed)."""
    from scipy.io import loadmat

    layout = f"expected AFLW2000-3D's {MAT_LANDMARKS_KEY!r} variable of shape (3, 68) (x, y, z rows)"
    try:
        data = loadmat(path)
    except Exception as error:  # MatReadError, struct.error, ...: not a MATLAB file
        raise BadLandmarksError(path, f"cannot read the .mat file ({error}); {layout}") from None
    if MAT_LANDMARKS_KEY not in data:
        names = sorted(k for k in data if not k.startswith("__"))
        raise BadLandmarksError(path, f"no {MAT_LANDMARKS_KEY!r} variable (it holds "
                                      f"{', '.join(names) or 'nothing'}); {layout}")
    points = np.asarray(data[MAT_LANDMARKS_KEY])
    if points.ndim != 2 or points.shape[0] not in (2, 3) or points.shape[1] != N_LANDMARKS:
        raise BadLandmarksError(path, f"{MAT_LANDMARKS_KEY!r} has shape {points.shape}; {layout}")
    return points.T


def _read_text_points(text: str, path: Path) -> np.ndarray:
    """``x y`` (or ``x,y``) lines as an ``(N, 2+)`` array; blank and ``#`` lines skipped."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].replace(",", " ").replace(";", " ").strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise BadLandmarksError(path, f"line {number} is not numbers: {line[:40]!r}; "
                                          "expected 'x y' per line") from None
    if len(rows) == 1 and len(rows[0]) == 2 * N_LANDMARKS:
        return np.array(rows[0], dtype=np.float64).reshape(N_LANDMARKS, 2)
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise BadLandmarksError(path, "expected one 'x y' pair per line, the same number of "
                                      "columns on every line")
    return np.array(rows, dtype=np.float64)
