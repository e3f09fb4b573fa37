"""The demo head's small linear albedo model in its UV atlas.

Every texel is traced back to a point of the neutral head (rasterising the atlas) and the
mean and components are smooth functions of that point: overall skin tone, redness,
yellowness, lip colour, brow darkness, stubble, cheek blush, iris hue and lightness, sclera
tint, scalp shade and a nose/forehead tone. Images are RGB in [0, 1], row 0 the top of the
texture (v = 1 in OBJ convention); components are changes per unit (unit-variance)
coefficient, small enough that any one of them within +-3 keeps the albedo plausible.
"""

from __future__ import annotations

import numpy as np

from flamefit.flame.demo_head.anatomy import Anatomy
from flamefit.flame.demo_head.geometry import HeadLayout
from flamefit.flame.uv_atlas import ALBEDO_COMPONENT_NAMES, named_albedo_basis, rasterise_atlas
from flamefit.flame.uv_atlas import bump as _bump
from flamefit.flame.uv_atlas import fill_outside as _fill_outside

RESOLUTION = 256
COMPONENT_NAMES = ALBEDO_COMPONENT_NAMES
SKIN_RGB = np.array([0.80, 0.62, 0.52])
LIP_RGB = np.array([0.70, 0.42, 0.42])
SCLERA_RGB = np.array([0.93, 0.91, 0.88])
IRIS_RGB = np.array([0.40, 0.28, 0.20])
PUPIL_RGB = np.array([0.04, 0.03, 0.03])


def texture_space(
    layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, faces: np.ndarray, vt: np.ndarray, ft: np.ndarray,
    resolution: int = RESOLUTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(H, W, 3)`` and basis ``(H, W, 3, K)`` of the demo albedo model (RGB, [0, 1])."""
    a = anatomy
    face_map, bary_map = rasterise_atlas(vt, ft, resolution)
    covered = face_map >= 0
    corners = vertices[faces[np.maximum(face_map, 0)]]  # (H, W, 3, 3)
    p = np.einsum("hwk,hwkc->hwc", bary_map, corners)
    first_vertex = faces[np.maximum(face_map, 0), 0]
    eyeball = covered & (first_vertex >= layout.n_skin)
    skin = covered & ~eyeball
    m = np.concatenate([np.abs(p[..., :1]), p[..., 1:]], axis=-1)  # mirrored to the left side
    # eyes: angle from the eyeball's forward axis
    local = m - a.eye_centre
    gaze = np.arccos(np.clip(local[..., 2] / np.maximum(np.linalg.norm(local, axis=-1), 1e-9), -1.0, 1.0))
    iris = eyeball * (1.0 / (1.0 + np.exp((gaze - 0.45) / 0.03)))
    pupil = eyeball * (1.0 / (1.0 + np.exp((gaze - 0.2) / 0.02)))
    lips = skin * _bump(p, (0.0, a.mouth_y - 0.001, 0.07), (a.mouth_half_width * 0.8, 0.0085, 0.03))
    brows = skin * _bump(m, (a.brow_x + 0.004, a.brow_y + 0.004, a.brow_z + 0.01), (0.018, 0.0045, 0.02))
    stubble = skin * np.clip(_bump(p, (0.0, -0.06, 0.06), (0.045, 0.03, 0.05)) - 0.9 * lips, 0.0, 1.0) * (p[..., 2] > -0.02)
    blush = skin * _bump(m, (0.04, -0.01, 0.05), (0.015, 0.015, 0.03))
    scalp = skin * np.clip((p[..., 1] - 0.075) / 0.02 + np.clip(-p[..., 2] - 0.02, 0, None) / 0.02 * (p[..., 1] > -0.05), 0.0, 1.0)
    tone = skin * (_bump(p, (0.0, -0.0, 0.09), (0.012, 0.02, 0.03)) + _bump(p, (0.0, 0.075, 0.08), (0.03, 0.02, 0.04)))
    skin_f = skin.astype(float)[..., None]
    mean = skin_f * SKIN_RGB
    mean = mean + lips[..., None] * (LIP_RGB - SKIN_RGB) + brows[..., None] * -0.25 * SKIN_RGB
    mean = mean + scalp[..., None] * -0.06
    eye_f = eyeball.astype(float)[..., None]
    eye_rgb = SCLERA_RGB + iris[..., None] * (IRIS_RGB - SCLERA_RGB) + pupil[..., None] * (PUPIL_RGB - IRIS_RGB)
    mean = mean + eye_f * eye_rgb
    basis = named_albedo_basis(mean, skin, lips, brows, stubble, blush, iris - pupil,
                               eye_f[..., 0] - iris, scalp, tone)
    mean = _fill_outside(mean, covered)
    basis = _fill_outside(basis, covered)
    return np.clip(mean, 0.0, 1.0).astype(np.float32), basis.astype(np.float32)
