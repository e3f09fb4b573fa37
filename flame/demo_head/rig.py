"""Joints, skinning weights and pose correctives of the demo head (FLAME's five joints).

Joints: 0 global/root (base of the neck), 1 neck (upper neck), 2 jaw (between the
temporomandibular joints), 3 left eye, 4 right eye; parents ``[-1, 0, 1, 1, 1]``. The joint
regressor rows are sparse convex combinations of vertices, so joints follow identity shape.
All positions are model space (metres, y up, +z toward the viewer, +x the subject's left).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from flamefit.flame.demo_head.anatomy import Anatomy
from flamefit.flame.demo_head.geometry import N_POCKET_ROWS, HeadLayout, pinch_strength

KINTREE_TABLE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
JAW_HINGE = np.array([0.0, -0.022, -0.008])  # where the jaw regressor's two clusters meet
NECK_BLEND = (0.6, 0.4)  # neck joint = 0.6 * upper neck ring + 0.4 * ear clusters


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, elementwise."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _ring_weights(vertices: np.ndarray, indices: np.ndarray, centre_z: float) -> np.ndarray:
    """Weights (summing to 1) that average a horizontal ring of vertices uniformly in angle."""
    ring = vertices[indices]
    angle = np.arctan2(ring[:, 0], ring[:, 2] - centre_z)
    order = np.argsort(angle)
    sorted_angle = angle[order]
    gaps = np.diff(np.concatenate([sorted_angle, sorted_angle[:1] + 2 * np.pi]))
    extent = np.empty_like(angle)
    extent[order] = 0.5 * (gaps + np.roll(gaps, 1))
    return extent / extent.sum()


def _cluster(vertices: np.ndarray, candidates: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices among ``candidates`` within ``radius`` metres of ``centre``."""
    dist = np.linalg.norm(vertices[candidates] - centre, axis=1)
    return candidates[dist < radius]


def joint_regressor(vertices: np.ndarray, layout: HeadLayout, anatomy: Anatomy) -> scipy.sparse.csc_matrix:
    """``(5, V)`` sparse joint regressor (rows sum to 1) for the neutral ``vertices (V, 3)``."""
    n_vertices = len(vertices)
    skin = np.arange(1, layout.n_skin)
    rows, cols, vals = [], [], []

    def add(joint: int, idx: np.ndarray, w: np.ndarray) -> None:
        rows.append(np.full(len(idx), joint))
        cols.append(idx)
        vals.append(w)

    rim = layout.grid_index(layout.n_rows - 1, np.arange(layout.n_columns))
    add(0, rim, _ring_weights(vertices, rim, anatomy.neck_centre_z))
    upper_neck = layout.grid_index(layout.n_rows - 5, np.arange(layout.n_columns))
    add(1, upper_neck, NECK_BLEND[0] * _ring_weights(vertices, upper_neck, anatomy.neck_centre_z))
    for side in (1.0, -1.0):
        ear_centre = np.array([side * (anatomy.ear_x + anatomy.ear_thickness), anatomy.ear_y, anatomy.ear_z])
        ear = _cluster(vertices, skin, ear_centre, 0.014)
        add(1, ear, np.full(len(ear), NECK_BLEND[1] / (2 * len(ear))))
        hinge_side = _surface_point_on_side(vertices, skin, JAW_HINGE, side)
        tmj = _cluster(vertices, skin, hinge_side, 0.012)
        add(2, tmj, np.full(len(tmj), 0.5 / len(tmj)))
    for joint, eyeball in ((3, layout.left_eyeball), (4, layout.right_eyeball)):
        add(joint, eyeball, np.full(len(eyeball), 1.0 / len(eyeball)))
    matrix = scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(5, n_vertices)
    )
    return matrix.tocsc()


def _surface_point_on_side(vertices: np.ndarray, skin: np.ndarray, point: np.ndarray, side: float) -> np.ndarray:
    """The skin vertex closest to the horizontal line through ``point`` on the ``side`` (+1/-1)."""
    rel = vertices[skin] - point
    off_line = np.hypot(rel[:, 1], rel[:, 2]) + 10.0 * (side * rel[:, 0] < 0.0)
    return vertices[skin[np.argmin(off_line)]]


def jaw_weight(vertices: np.ndarray, layout: HeadLayout, anatomy: Anatomy) -> np.ndarray:
    """``(n_skin,)`` share of the jaw joint for each skin vertex, from the neutral positions.

    Below a line from the mouth corners up to the jaw hinge, in front of the ramus and above the
    throat; inside the mouth the pocket's lower rows (D, E, F) are fully on the jaw and its upper
    rows on the skull, so opening the jaw opens the pocket.
    """
    p = vertices[: layout.n_skin]
    ax = np.abs(p[:, 0])
    corner = anatomy.mouth_half_width
    t = np.clip((ax - corner) / (0.066 - corner), 0.0, 1.0)
    line_y = anatomy.mouth_y + t * (JAW_HINGE[1] - anatomy.mouth_y)
    below = sigmoid((line_y - p[:, 1]) / 0.0035)
    in_front = sigmoid((p[:, 2] - (-0.010 + 0.2 * (p[:, 1] + 0.02))) / 0.004)
    above_throat = sigmoid((p[:, 1] - (-0.104 + 0.25 * np.clip(p[:, 2] - 0.03, None, 0.0))) / 0.005)
    smooth = below * in_front * above_throat
    rows = layout.skin_row
    pocket = (rows >= layout.pocket_first_row) & (rows < layout.pocket_first_row + N_POCKET_ROWS)
    lower_side = (rows >= layout.pocket_first_row + N_POCKET_ROWS // 2).astype(float)
    strength = np.where(pocket & (p[:, 2] > 0.0), pinch_strength(p[:, 0], anatomy), 0.0)
    w = strength * lower_side + (1.0 - strength) * smooth
    w[0] = 0.0
    return w


def skinning_weights(vertices: np.ndarray, layout: HeadLayout, anatomy: Anatomy) -> np.ndarray:
    """``(V, 5)`` skinning weights (rows sum to 1) for the neutral ``vertices (V, 3)``.

    The lower neck follows the root, the rest of the head the neck joint, the jaw region the jaw
    and each eyeball its eye joint rigidly.
    """
    weights = np.zeros((len(vertices), 5))
    y = vertices[: layout.n_skin, 1]
    root = np.clip((-0.112 - y) / (0.16 - 0.112), 0.0, 1.0)
    root = root * root * (3.0 - 2.0 * root)
    jaw = jaw_weight(vertices, layout, anatomy)
    weights[: layout.n_skin, 0] = root
    weights[: layout.n_skin, 1] = (1.0 - root) * (1.0 - jaw)
    weights[: layout.n_skin, 2] = (1.0 - root) * jaw
    weights[layout.left_eyeball, 3] = 1.0
    weights[layout.right_eyeball, 4] = 1.0
    return weights


def _gaussian(points: np.ndarray, centre, sigma) -> np.ndarray:
    """Anisotropic Gaussian falloff ``(N,)`` of ``(N, 3)`` points around ``centre``."""
    q = (points - np.asarray(centre, dtype=float)) / np.asarray(sigma, dtype=float)
    return np.exp(-0.5 * np.sum(q * q, axis=1))


def pose_correctives(
    vertices: np.ndarray, normals: np.ndarray, layout: HeadLayout, anatomy: Anatomy
) -> np.ndarray:
    """``(V, 3, 36)`` pose-corrective blendshapes in FLAME's convention.

    Column ``9 * (j - 1) + 3 * r + c`` multiplies ``(R_j - I)[r, c]`` of joint ``j`` (1 neck,
    2 jaw, 3 left eye, 4 right eye). Correctives (metres per unit matrix entry, so millimetres
    at everyday angles): the throat bulges when the head nods forward, the neck's side muscles
    stand out when it turns, the cheeks hollow and the chin's soft tissue drops when the jaw
    opens, and each upper lid follows its eye's gaze up and down. Eyeballs stay rigid.
    """
    posedirs = np.zeros((len(vertices), 3, 36))
    p = vertices[: layout.n_skin]
    n = normals[: layout.n_skin]

    def column(joint: int, r: int, c: int) -> int:
        return 9 * (joint - 1) + 3 * r + c

    throat = _gaussian(p, (0.0, -0.1, 0.03), (0.03, 0.018, 0.03))
    posedirs[: layout.n_skin, :, column(1, 2, 1)] = 0.012 * throat[:, None] * n
    sides = _gaussian(p, (0.0, -0.12, 0.0), (0.08, 0.025, 0.05))
    side_sign = np.tanh(p[:, 0] / 0.01) * (p[:, 2] > -0.02)
    posedirs[: layout.n_skin, :, column(1, 0, 2)] = 0.006 * (sides * side_sign)[:, None] * n
    mirrored = np.column_stack([np.abs(p[:, 0]), p[:, 1:]])
    cheeks = _gaussian(mirrored, (0.045, -0.03, 0.04), (0.012, 0.014, 0.02))
    chin = _gaussian(p, (0.0, -0.075, 0.06), (0.02, 0.012, 0.02))
    jaw_open = -0.006 * cheeks[:, None] * n + 0.004 * chin[:, None] * np.array([0.0, -1.0, 0.3])
    posedirs[: layout.n_skin, :, column(2, 2, 1)] = jaw_open
    for joint, side in ((3, 1.0), (4, -1.0)):
        lid_centre = (side * anatomy.eye_x, anatomy.eye_y + anatomy.slit_half_height + 0.003, anatomy.eye_z + 0.012)
        lid = _gaussian(p, lid_centre, (0.012, 0.004, 0.008))
        # gaze down (rotation about +x, (R - I)[2, 1] = sin > 0) lowers the upper lid
        posedirs[: layout.n_skin, :, column(joint, 2, 1)] = 0.004 * lid[:, None] * np.array([0.0, -1.0, 0.0])
    return posedirs
