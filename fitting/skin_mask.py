"""Per-pixel skin probability estimated from the photo itself (no segmentation network).

1. Seed regions where skin is nearly certain are drawn from the 68 landmarks: both cheeks, the
   nose ridge and a band of forehead above the brows (eyes, brows, mouth and the jaw line, where
   beards and the background start, are kept out of them).
2. A Gaussian colour model is fitted to the seed pixels in CIE Lab, robustly (iteratively
   trimmed: the 25 % of seed pixels farthest from the model, e.g. a fringe of hair or a
   specular highlight, are left out and the model refitted). The lightness variance is inflated
   so that shading across the face is not mistaken for a different colour.
3. Every pixel of the face region (the landmark hull extended over the forehead) gets the chi-square
   survival probability of its Mahalanobis distance: ~1 at the skin colour, 0.05 at the edge of
   the 95 % skin colour ellipsoid, 0 far from it. Eyes and the mouth's interior, taken from the
   landmarks, are set to 0; the map is lightly smoothed.

All arrays are in image space (pixels, origin top-left, x right, y down) of the image the
landmarks belong to (the photo or a crop of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.stats import chi2

from flamefit.flame.landmark_sets import (
    BROWS, CHIN, INNER_LIPS, LEFT_EYE, N_LANDMARKS, NOSE_BASE, NOSE_TIP, NOSE_TOP, RIGHT_EYE,
)

#: Fraction of seed pixels refitted after each trimming round.
TRIM_KEEP = 0.75
TRIM_ROUNDS = 3
#: Lightness variance multiplier (shading changes L far more than chroma).
LIGHTNESS_VARIANCE_GAIN = 4.0
#: Smallest variance of each Lab channel (units^2), so uniform seeds still give a usable model.
MIN_VARIANCE = np.array([9.0, 2.0, 2.0])
MIN_SEED_PIXELS = 30


@dataclass(frozen=True)
class SkinColourModel:
    """A Gaussian over CIE Lab colour (L 0-100, a and b roughly -128..127).

    Attributes:
        mean: ``(3,)`` Lab mean.
        covariance: ``(3, 3)`` Lab covariance (lightness variance already inflated).
    """

    mean: np.ndarray
    covariance: np.ndarray

    def probability(self, lab: np.ndarray) -> np.ndarray:
        """``(...,)`` probability that ``(..., 3)`` Lab colours are skin (chi-square survival
        function of the squared Mahalanobis distance, 3 degrees of freedom)."""
        delta = lab - self.mean
        precision = np.linalg.inv(self.covariance)
        distance2 = np.einsum("...i,ij,...j->...", delta, precision, delta)
        return chi2.sf(distance2, df=3).astype(np.float32)


def skin_probability(rgb: np.ndarray, landmarks: np.ndarray,
                     smooth_sigma: float | None = None) -> np.ndarray:
    """Skin probability of every pixel, 0 outside the face region.

    Args:
        rgb: ``(H, W, 3)`` uint8 or float [0, 1] RGB image.
        landmarks: ``(68, 2)`` image-space landmarks of the face.
        smooth_sigma: Gaussian smoothing (px); default 1 % of the face size (at least 0.7 px).

    Returns:
        ``(H, W) float32`` in [0, 1].
    """
    height, width = np.asarray(rgb).shape[:2]
    points = _check_landmarks(landmarks)
    region = face_region_mask(points, (height, width))
    rows, cols = np.nonzero(region)
    probability = np.zeros((height, width), np.float32)
    if rows.size == 0:
        return probability
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    lab = rgb_to_lab(np.asarray(rgb)[y0:y1, x0:x1])
    seeds = skin_seed_mask(points, (height, width))[y0:y1, x0:x1]
    model = fit_skin_colour_model(lab[seeds])
    probability[y0:y1, x0:x1] = model.probability(lab) * region[y0:y1, x0:x1]
    probability *= 1.0 - _eyes_and_mouth_mask(points, (height, width))
    face_size = float(np.ptp(points, axis=0).max())
    sigma = max(0.7, 0.01 * face_size) if smooth_sigma is None else smooth_sigma
    if sigma > 0:
        probability = cv2.GaussianBlur(probability, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(probability, 0.0, 1.0)


def fit_skin_colour_model(lab_samples: np.ndarray) -> SkinColourModel:
    """Robust Gaussian fit to ``(N, 3)`` Lab skin samples (iteratively trimmed)."""
    samples = np.asarray(lab_samples, dtype=np.float64).reshape(-1, 3)
    if len(samples) < MIN_SEED_PIXELS:
        raise ValueError(f"only {len(samples)} skin seed pixels; the face is too small or "
                         "the landmarks are off the image")
    mean = np.median(samples, axis=0)
    # Start from a MAD-based diagonal covariance (robust to the outliers the trimming removes).
    mad = np.median(np.abs(samples - mean), axis=0) * 1.4826
    covariance = np.diag(np.maximum(mad ** 2, MIN_VARIANCE))
    kept = samples
    for _ in range(TRIM_ROUNDS):
        delta = samples - mean
        distance2 = np.einsum("ni,ij,nj->n", delta, np.linalg.inv(covariance), delta)
        kept = samples[distance2 <= np.quantile(distance2, TRIM_KEEP)]
        mean = kept.mean(axis=0)
        covariance = np.cov(kept, rowvar=False) + np.diag(MIN_VARIANCE)
    # A trimmed sample underestimates the spread; rescale to the full chi-square quantile.
    consistency = TRIM_KEEP / chi2.cdf(chi2.ppf(TRIM_KEEP, 3), 5)
    covariance = covariance * consistency
    gain = np.diag([np.sqrt(LIGHTNESS_VARIANCE_GAIN), 1.0, 1.0])
    return SkinColourModel(mean=mean, covariance=gain @ covariance @ gain)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB (uint8 or float [0, 1]) to CIE Lab ``(..., 3) float32`` (D65)."""
    image = np.asarray(rgb)
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(
        np.float32)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2Lab)


def landmark_face_hull_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W) float32`` 1 inside the convex hull of the 68 landmarks, 0 outside.

    Args:
        landmarks: ``(68, 2)`` image-space landmarks.
        size: ``(H, W)`` of the image.
    """
    return _fill_polygons([cv2.convexHull(_check_landmarks(landmarks).astype(np.float32))
                           [:, 0]], size).astype(np.float32)


def face_region_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W) float32`` the landmark hull extended up over the forehead (1 inside).

    The forehead top is placed 0.9 nose lengths above the brows, along the face's up direction.
    """
    points = _check_landmarks(landmarks)
    up, unit = _face_frame(points)
    forehead = points[BROWS] + up * 0.9 * unit
    hull = cv2.convexHull(np.concatenate([points, forehead]).astype(np.float32))[:, 0]
    return _fill_polygons([hull], size).astype(np.float32)


def skin_seed_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool`` regions that are skin on almost every face: cheeks, nose ridge, forehead.

    Polygons from the 68 landmarks, shrunk toward their centres so that eyes, brows, nostrils,
    mouth, beard lines and the face outline stay outside.
    """
    return _fill_polygons(skin_seed_polygons(landmarks), size)


def skin_seed_polygons(landmarks: np.ndarray) -> list[np.ndarray]:
    """The seed polygons (each ``(K, 2)`` image-space points) used by :func:`skin_seed_mask`."""
    points = _check_landmarks(landmarks)
    up, unit = _face_frame(points)
    right = np.array([-up[1], up[0]])  # image-right direction of an upright face
    cheek_right_of_image = points[[15, 14, 13, 54, 35, 46, 45]]  # the subject's left cheek
    cheek_left_of_image = points[[1, 2, 3, 48, 31, 41, 36]]
    polygons = [_shrink(cheek_left_of_image, 0.6), _shrink(cheek_right_of_image, 0.6)]
    half_ridge = 0.12 * unit * right
    nose = np.array([points[28] - half_ridge, points[28] + half_ridge,
                     points[NOSE_TIP] + 1.4 * half_ridge, points[NOSE_TIP] - 1.4 * half_ridge])
    polygons.append(nose)
    brow_line = points[[18, 20, 23, 25]]
    forehead = np.concatenate([brow_line + up * 0.25 * unit,
                               brow_line[::-1] + up * 0.65 * unit])
    polygons.append(forehead)
    return polygons


def _eyes_and_mouth_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W) float32`` 1 on the eyes (slightly enlarged) and the mouth's interior."""
    polygons = [_shrink(points[RIGHT_EYE], 1.35), _shrink(points[LEFT_EYE], 1.35),
                _shrink(points[INNER_LIPS], 1.1)]
    return _fill_polygons(polygons, size).astype(np.float32)


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face's up direction (unit vector, image space) and its nose length (px)."""
    chin_to_bridge = points[NOSE_TOP] - points[CHIN]
    up = chin_to_bridge / max(np.linalg.norm(chin_to_bridge), 1e-6)
    unit = float(np.linalg.norm(points[NOSE_BASE] - points[NOSE_TOP]))
    return up, max(unit, 1.0)


def _shrink(polygon: np.ndarray, factor: float) -> np.ndarray:
    """Scale a ``(K, 2)`` polygon about its centroid."""
    centre = polygon.mean(axis=0)
    return centre + factor * (polygon - centre)


def _fill_polygons(polygons: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool`` union of filled image-space polygons (sub-pixel vertex precision)."""
    height, width = size
    canvas = np.zeros((height, width), np.uint8)
    shift = 4  # vertices in 1/16 px
    cv2.fillPoly(canvas, [np.round(np.asarray(p) * (1 << shift)).astype(np.int32)
                          for p in polygons], 1, lineType=cv2.LINE_8, shift=shift)
    return canvas.astype(bool)


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected finite ({N_LANDMARKS}, 2) landmarks, got shape {points.shape}")
    return points
