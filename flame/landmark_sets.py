"""The index sets of the 68-point iBUG 300-W landmark layout, named once (torch-free).

Every 68-landmark array of the toolkit is in this order: detections (dlib, FAN), user files and
the model's fitting landmarks (the 17 yaw-dependent contour points followed by the 51 static
ones, see :class:`flamefit.flame.model_data.LandmarkEmbedding`). Index ``i`` here is the
0-based index (the iBUG chart numbers points from 1).

Sides are the **subject's**, like FLAME's joints (its left eye is at +x in model space, on the
image's right in a frontal photo): :data:`RIGHT_EYE` ``36..41`` is the eye on the image's left,
:data:`LEFT_EYE` ``42..47`` the one on the image's right. The contour runs from the subject's
right ear (0) over the chin (8) to the left ear (16); each brow from outside in on the
subject's right (17..21) and inside out on the left (22..26).

Sets are ``slice`` objects (contiguous runs: ``points[..., MOUTH, :]``) so indexing returns views
of numpy arrays and torch tensors alike; :func:`indices` turns any of them into an index array.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "N_LANDMARKS",
    "N_CONTOUR",
    "N_INNER",
    "CONTOUR",
    "INNER",
    "RIGHT_BROW",
    "LEFT_BROW",
    "BROWS",
    "NOSE_BRIDGE",
    "NOSTRILS",
    "NOSE",
    "RIGHT_EYE",
    "LEFT_EYE",
    "EYES",
    "OUTER_LIPS",
    "INNER_LIPS",
    "MOUTH",
    "CHIN",
    "NOSE_TOP",
    "NOSE_TIP",
    "NOSE_BASE",
    "indices",
    "eye_centres",
    "inter_ocular_distance",
]

N_LANDMARKS = 68
N_CONTOUR = 17
N_INNER = N_LANDMARKS - N_CONTOUR  # 51 static (yaw-independent) points

CONTOUR = slice(0, 17)  # jaw line, subject's right ear -> chin (8) -> left ear
INNER = slice(17, 68)  # the 51 static points: brows, nose, eyes, mouth
RIGHT_BROW = slice(17, 22)  # subject's right (image left), outer -> inner
LEFT_BROW = slice(22, 27)  # subject's left (image right), inner -> outer
BROWS = slice(17, 27)
NOSE_BRIDGE = slice(27, 31)  # top of the bridge (27) down to the tip (30)
NOSTRILS = slice(31, 36)  # lower nose, right wing -> base (33) -> left wing
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)  # subject's right eye (image left), from its outer corner
LEFT_EYE = slice(42, 48)  # subject's left eye (image right), from its inner corner
EYES = slice(36, 48)
OUTER_LIPS = slice(48, 60)  # from the right mouth corner (48), clockwise in the image
INNER_LIPS = slice(60, 68)
MOUTH = slice(48, 68)

CHIN = 8
NOSE_TOP = 27  # top of the nose bridge, between the eyes
NOSE_TIP = 30
NOSE_BASE = 33  # below the tip, where the nose meets the upper lip


def indices(index_set: slice | int) -> np.ndarray:
    """``(K,)`` int64 landmark indices of a set (``slice``) or single point (``int``)."""
    if isinstance(index_set, slice):
        return np.arange(N_LANDMARKS, dtype=np.int64)[index_set]
    return np.array([index_set], dtype=np.int64)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each eye's six points.

    Args:
        landmarks: ``(..., 68, 2)`` (or ``(..., 68, D)``) points in any frame.

    Returns:
        ``(right, left)`` subject's eye centres, each ``(..., D)`` in the frame of ``landmarks``.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    return points[..., RIGHT_EYE, :].mean(axis=-2), points[..., LEFT_EYE, :].mean(axis=-2)


def inter_ocular_distance(landmarks: np.ndarray) -> np.ndarray | float:
    """Distance between the two eye centres (the usual landmark-error normaliser).

    Args:
        landmarks: ``(..., 68, 2)`` points, e.g. pixels.

    Returns:
        ``(...)`` distances in the units of ``landmarks``; a Python ``float`` for one ``(68, 2)``
        set.
    """
    right, left = eye_centres(landmarks)
    distance = np.linalg.norm(right - left, axis=-1)
    return float(distance) if distance.ndim == 0 else distance
