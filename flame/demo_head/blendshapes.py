"""Identity and expression blendshapes of the demo head, scaled for unit-variance coefficients.

Identity (``N_SHAPE`` = 100): the first ones change named proportions (see
``IDENTITY_COMPONENTS``), the rest are smooth random low-frequency fields along the normals
(fixed seed). All are Gram-Schmidt orthogonalised in order and scaled so that component ``k`` at
coefficient 1 moves the vertices by ``identity_rms_mm(k)`` millimetres RMS, decreasing like a
PCA spectrum. Eyeballs move rigidly with their sockets.

Expression (``N_EXPRESSION`` = 50): the semantic ones listed by index in
``EXPRESSION_COMPONENTS`` (each scaled to a stated peak displacement at coefficient 1), then
small localised generic ones around the mouth, eyes and brows.

Displacements are ``(V, 3)`` in model space (metres).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.linalg

from flamefit.flame.demo_head.anatomy import Anatomy, head_sdf
from flamefit.flame.demo_head.geometry import (
    HeadLayout,
    build_vertices,
    eyeball_vertices,
    fold_mouth_pocket,
    symmetrise,
)

N_SHAPE = 100
N_EXPRESSION = 50
IDENTITY_SEED = 1001
EXPRESSION_SEED = 2002

# name -> changes of Anatomy fields (metres) or a global field; the order is the column order
IDENTITY_COMPONENTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("head width", {"@width": 1.0}),
    ("head length (front to back)", {"@length": 1.0}),
    ("skull height", {"@height": 1.0}),
    ("lower face width", {"@face_width": 1.0}),
    ("jaw width", {"jaw_half_width": 0.006, "chin_half_width": 0.002}),
    ("chin projection", {"chin_centre_z": 0.005}),
    ("chin height", {"chin_centre_y": -0.005, "jaw_centre_y": -0.003}),
    ("nose length", {"nose_tip_y": -0.005, "alar_y": -0.004}),
    ("nose projection", {"nose_tip_z": 0.005, "alar_z": 0.002}),
    ("nose width", {"nose_tip_width": 0.002, "alar_x": 0.003, "alar_radius": 0.001}),
    ("nose bridge height", {"nasion_z": 0.003, "nose_bridge_radius": 0.001}),
    ("forehead slope", {"forehead_slope": -0.08}),
    ("brow prominence", {"brow_z": 0.003, "brow_half_depth": 0.001}),
    ("eye spacing", {"eye_x": 0.003}),
    ("eye depth", {"eye_z": -0.003, "socket_depth": 0.002}),
    ("cheekbones", {"cheekbone_x": 0.003, "cheekbone_z": 0.003}),
    ("cheek fullness", {"cheek_fullness": 0.004}),
    ("lip fullness", {"upper_lip_thickness": 0.0015, "lower_lip_thickness": 0.0015}),
    ("mouth width", {"mouth_half_width": 0.003, "upper_lip_half_width": 0.003, "lower_lip_half_width": 0.003}),
    ("ear size", {"ear_half_height": 0.004, "ear_half_depth": 0.003}),
    ("ear height", {"ear_y": 0.005}),
    ("neck thickness", {"@neck": 1.0}),
)

# index -> (name, peak displacement in millimetres at coefficient 1)
EXPRESSION_COMPONENTS: tuple[tuple[str, float], ...] = (
    ("mouth open (soft tissue of a jaw drop)", 4.0),
    ("smile", 4.0),
    ("brows raise", 4.0),
    ("brows frown", 3.0),
    ("left eye close (fully closed at +2)", 0.0),
    ("right eye close (fully closed at +2)", 0.0),
    ("lip pucker", 4.0),
    ("mouth stretch", 4.0),
    ("cheek puff", 4.0),
    ("nose wrinkle", 3.0),
    ("lip corners down", 4.0),
    ("upper lip raise", 3.0),
    ("lower lip depress", 3.0),
    ("left smile", 4.0),
    ("right smile", 4.0),
    ("left brow raise", 4.0),
    ("right brow raise", 4.0),
    ("squint (lower lids up)", 2.0),
    ("lips press", 3.0),
    ("chin raise", 3.0),
)
GENERIC_EXPRESSION_PEAK_MM = 2.0


def identity_rms_mm(k: np.ndarray | int) -> np.ndarray:
    """Target RMS displacement (mm, over all vertices) of identity component ``k`` at 1."""
    return 3.0 * (1.0 + np.asarray(k, dtype=float)) ** -0.55


def _global_field(name: str, vertices: np.ndarray) -> np.ndarray:
    """``(V, 3)`` displacement of a whole-head proportion change (roughly 1 cm at the edges)."""
    x, y, z = vertices.T
    d = np.zeros_like(vertices)
    head = np.clip((y + 0.11) / 0.05, 0.0, 1.0)  # fades out down the neck
    if name == "@width":
        d[:, 0] = 0.08 * x * head
    elif name == "@length":
        d[:, 2] = 0.08 * np.minimum(z, 0.0) * head
    elif name == "@height":
        d[:, 1] = 0.08 * np.maximum(y - 0.01, 0.0)
    elif name == "@face_width":
        band = np.exp(-0.5 * ((y + 0.035) / 0.03) ** 2) / (1.0 + np.exp(-(z + 0.02) / 0.008))
        d[:, 0] = 0.1 * x * band
    elif name == "@neck":
        neck = np.clip((-0.07 - y) / 0.04, 0.0, 1.0)
        d[:, 0] = 0.1 * x * neck
        d[:, 2] = 0.1 * (z + 0.022) * neck
    else:
        raise KeyError(name)
    return d


def proportion_derivative(
    layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, distances: np.ndarray, changes: dict[str, float]
) -> np.ndarray:
    """``(V, 3)`` first-order displacement of the head when ``anatomy`` changes by ``changes``.

    Each skin vertex slides along its ray by ``-d(sdf) / (d sdf / dt)`` (central differences);
    the mouth pocket is folded again and the eyeballs move with their centres. Global fields
    (names starting with ``@``) are applied to the vertices directly, eyeballs rigidly.
    """
    if any(name.startswith("@") for name in changes):
        d = sum(w * _global_field(name, vertices) for name, w in changes.items())
        for eyeball in (layout.left_eyeball, layout.right_eyeball):
            centre = vertices[eyeball].mean(axis=0, keepdims=True)
            d[eyeball] = sum(w * _global_field(name, centre) for name, w in changes.items())
        return d
    origins, dirs = layout.rays
    surface = origins + distances[:, None] * dirs
    plus = replace(anatomy, **{k: getattr(anatomy, k) + 0.5 * v for k, v in changes.items()})
    minus = replace(anatomy, **{k: getattr(anatomy, k) - 0.5 * v for k, v in changes.items()})
    change = head_sdf(surface, plus) - head_sdf(surface, minus)
    eps = 2e-4
    slope = (head_sdf(surface + eps * dirs, anatomy) - head_sdf(surface - eps * dirs, anatomy)) / (2 * eps)
    dt = np.clip(-change / np.maximum(slope, 0.3), -0.02, 0.02)
    skin_plus = fold_mouth_pocket(surface + 0.5 * dt[:, None] * dirs, layout, plus)
    skin_minus = fold_mouth_pocket(surface - 0.5 * dt[:, None] * dirs, layout, minus)
    eyes = eyeball_vertices(layout, plus) - eyeball_vertices(layout, minus)
    return np.concatenate([skin_plus - skin_minus, eyes])


def _smooth_normal_field(
    vertices: np.ndarray, normals: np.ndarray, layout: HeadLayout, rng: np.random.Generator, sigma_range
) -> np.ndarray:
    """``(V, 3)`` random smooth displacement along the normals: a sum of a few Gaussian bumps
    centred on skin vertices; eyeballs follow the field at their centres along +z."""
    skin = vertices[1 : layout.n_skin]
    n_bumps = 4
    centres = skin[rng.integers(0, len(skin), n_bumps)]
    sigmas = rng.uniform(*sigma_range, n_bumps)
    amps = rng.normal(size=n_bumps)

    def field(points: np.ndarray) -> np.ndarray:
        r2 = np.sum((points[:, None, :] - centres[None]) ** 2, axis=2)
        return np.exp(-0.5 * r2 / sigmas**2) @ amps

    d = field(vertices)[:, None] * normals
    for eyeball in (layout.left_eyeball, layout.right_eyeball):
        centre = vertices[eyeball].mean(axis=0, keepdims=True)
        d[eyeball] = field(centre)[:, None] * np.array([0.0, 0.0, 1.0])
    return d


def _mirror_field(d: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The mirror image ``(V, 3)`` of a displacement field across ``x = 0``."""
    return d[mirror] * np.array([-1.0, 1.0, 1.0])


def _orthonormal_in_order(columns: np.ndarray) -> np.ndarray:
    """Gram-Schmidt of ``(N, K)`` columns in order, keeping each column's direction (sign).

    Computed as ``columns @ inv(L).T`` with ``L`` the Cholesky factor of the Gram matrix, which
    equals QR with a positive diagonal and is much cheaper for tall matrices.
    """
    chol = np.linalg.cholesky(columns.T @ columns)
    return scipy.linalg.solve_triangular(chol, columns.T, lower=True).T


def identity_blendshapes(
    layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, normals: np.ndarray, distances: np.ndarray
) -> np.ndarray:
    """``(V, 3, N_SHAPE)`` identity blendshapes (metres per unit coefficient)."""
    rng = np.random.default_rng(IDENTITY_SEED)
    fields = [
        symmetrise(proportion_derivative(layout, anatomy, vertices, distances, changes), layout.mirror)
        for _, changes in IDENTITY_COMPONENTS
    ]
    while len(fields) < N_SHAPE:
        d = _smooth_normal_field(vertices, normals, layout, rng, (0.03, 0.06))
        m = _mirror_field(d, layout.mirror)
        # mostly symmetric variation, every third one antisymmetric
        fields.append(d - m if len(fields) % 3 == 0 else d + m)
    basis = _orthonormal_in_order(np.stack([f.reshape(-1) for f in fields], axis=1))
    rms = identity_rms_mm(np.arange(N_SHAPE)) * 1e-3
    basis = basis * (rms * np.sqrt(len(vertices)))[None, :]
    return basis.reshape(len(vertices), 3, N_SHAPE)


def _bump(points: np.ndarray, centre, sigma) -> np.ndarray:
    """Gaussian falloff ``(N,)`` around ``centre`` (``sigma`` scalar or per axis)."""
    q = (points - np.asarray(centre, dtype=float)) / np.asarray(sigma, dtype=float)
    return np.exp(-0.5 * np.sum(q * q, axis=1))


def _semantic_expression(
    index: int, layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, normals: np.ndarray, jaw: np.ndarray
) -> np.ndarray:
    """Unscaled ``(V, 3)`` displacement of semantic expression ``index`` (skin only)."""
    a = anatomy
    p = vertices[: layout.n_skin]
    n = normals[: layout.n_skin]
    x, y, z = p.T
    side = np.tanh(x / 0.004)
    front = (z > 0.0).astype(float)
    left, right = (x > 0).astype(float), (x < 0).astype(float)
    mouth = (0.0, a.mouth_y, 0.07)
    corner = lambda s: (s * a.mouth_half_width * 0.85, a.mouth_y, 0.06)  # noqa: E731
    corners = _bump(p, corner(1), 0.011) + _bump(p, corner(-1), 0.011)
    d = np.zeros_like(p)
    if index == 0:
        hinge = np.array([0.0, -0.022, -0.008])
        rel = p - hinge
        d = jaw[:, None] * np.stack([np.zeros_like(x), -rel[:, 2], rel[:, 1]], 1)
    elif index in (1, 13, 14):
        mask = {1: 1.0, 13: left, 14: right}[index]
        cheeks = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (0.038, -0.018, 0.05), 0.014)
        d = (corners[:, None] * np.stack([0.5 * side, np.ones_like(x), -0.4 * np.ones_like(x)], 1)
             + 0.5 * cheeks[:, None] * np.array([0.0, 0.8, 0.5]))
        d = d * np.asarray(mask).reshape(-1, 1) if np.ndim(mask) else d
    elif index in (2, 15, 16):
        mask = {2: 1.0, 15: left, 16: right}[index]
        brows = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (a.brow_x, a.brow_y + 0.004, a.brow_z), (0.022, 0.014, 0.03))
        d = (brows * front * mask)[:, None] * np.array([0.0, 1.0, 0.1])
    elif index == 3:
        inner = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (0.014, a.brow_y, a.brow_z), (0.012, 0.01, 0.03))
        d = (inner * front)[:, None] * np.stack([-0.6 * side, -0.8 * np.ones_like(x), 0.25 * np.ones_like(x)], 1)
    elif index == 6:
        lips = _bump(p, mouth, (0.022, 0.014, 0.03)) * front
        d = lips[:, None] * np.stack([-0.35 * x / 0.02, np.zeros_like(x), np.ones_like(x)], 1)
    elif index == 7:
        d = corners[:, None] * np.stack([side, -0.5 * np.ones_like(x), -0.2 * np.ones_like(x)], 1)
    elif index == 8:
        puff = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (0.038, -0.035, 0.045), (0.014, 0.016, 0.03)) * front
        d = puff[:, None] * n
    elif index == 9:
        nose = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (0.012, 0.0, 0.07), 0.01) * front
        d = nose[:, None] * np.array([0.0, 1.0, 0.2])
    elif index == 10:
        d = corners[:, None] * np.array([0.0, -1.0, 0.0])
    elif index in (11, 12):
        centre = (0.0, a.upper_lip_y + 0.003, 0.07) if index == 11 else (0.0, a.lower_lip_y - 0.002, 0.07)
        lip = _bump(p, centre, (0.018, 0.007, 0.03)) * front
        upper_side = (jaw < 0.5) if index == 11 else (jaw >= 0.5)
        d = (lip * upper_side)[:, None] * np.array([0.0, 1.0 if index == 11 else -1.0, 0.2])
    elif index == 17:
        lid = _bump(np.abs(p) * [1, 0, 0] + p * [0, 1, 1], (a.eye_x, a.eye_y - 0.008, a.eye_z + 0.012), (0.01, 0.004, 0.01))
        d = lid[:, None] * np.array([0.0, 1.0, 0.3])
    elif index == 18:
        lips = _bump(p, mouth, (0.02, 0.012, 0.03)) * front
        d = lips[:, None] * np.stack([np.zeros_like(x), -0.3 * np.tanh((y - a.mouth_y) / 0.004), -np.ones_like(x)], 1)
    elif index == 19:
        chin = _bump(p, (0.0, a.chin_centre_y, a.chin_centre_z), (0.02, 0.015, 0.03)) * front
        d = chin[:, None] * np.array([0.0, 0.8, 0.3])
    out = np.zeros_like(vertices)
    out[: layout.n_skin] = d
    return out


def eye_close_displacement(layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """``(V, 3)`` displacement that closes the left eye's lids completely (a full re-cast)."""
    both_closed = replace(anatomy, upper_lid_closure=1.0, upper_lid_closure_right=1.0)
    closed, _ = build_vertices(layout, both_closed, guess=distances)
    d = closed - vertices
    d[vertices[:, 0] < 0.0] = 0.0
    d[layout.n_skin :] = 0.0
    return d


def expression_blendshapes(
    layout: HeadLayout,
    anatomy: Anatomy,
    vertices: np.ndarray,
    normals: np.ndarray,
    distances: np.ndarray,
    jaw: np.ndarray,
) -> np.ndarray:
    """``(V, 3, N_EXPRESSION)`` expression blendshapes (metres per unit coefficient).

    ``jaw`` ``(n_skin,)`` is the jaw's skinning weight (the mouth-open field follows it).
    """
    fields = []
    for index, (_, peak_mm) in enumerate(EXPRESSION_COMPONENTS):
        if index == 4:
            d = 0.5 * eye_close_displacement(layout, anatomy, vertices, distances)
        elif index == 5:
            d = _mirror_field(fields[4], layout.mirror)
        else:
            d = _semantic_expression(index, layout, anatomy, vertices, normals, jaw)
            if index not in (13, 14, 15, 16):
                d = symmetrise(d, layout.mirror)
            d = d * (peak_mm * 1e-3 / np.abs(d).max())
        fields.append(d)
    rng = np.random.default_rng(EXPRESSION_SEED)
    a = anatomy
    regions = np.array(
        [(0.0, a.mouth_y, 0.075), (a.mouth_half_width, a.mouth_y, 0.06), (a.eye_x, a.eye_y + 0.012, 0.07),
         (a.eye_x, a.eye_y - 0.01, 0.065), (a.brow_x, a.brow_y, 0.075), (0.012, a.brow_y, 0.08)]
    )
    p = vertices[: layout.n_skin]
    while len(fields) < N_EXPRESSION:
        centre = regions[rng.integers(len(regions))] * np.array([rng.choice([-1.0, 1.0]), 1.0, 1.0])
        centre = centre + rng.normal(scale=0.004, size=3)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        d = np.zeros_like(vertices)
        d[: layout.n_skin] = _bump(p, centre, rng.uniform(0.007, 0.014))[:, None] * direction
        fields.append(d * (GENERIC_EXPRESSION_PEAK_MM * 1e-3 / np.abs(d).max()))
    return np.stack(fields, axis=2)
