"""Vertex masks of the demo head (``FLAME_masks.pkl``): region name -> int64 vertex indices.

Regions are chosen from the neutral vertex positions (model space, metres) and the anatomy's
landmark positions; ``boundary`` is the open neck rim.
"""

from __future__ import annotations

import numpy as np

from flamefit.flame.demo_head.anatomy import Anatomy
from flamefit.flame.demo_head.geometry import HeadLayout

MASK_NAMES = (
    "face", "left_eyeball", "right_eyeball", "eye_region", "lips", "nose", "forehead",
    "scalp", "neck", "left_ear", "right_ear", "boundary",
)


def vertex_masks(layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Region masks for the neutral ``vertices (V, 3)``."""
    a = anatomy
    n = layout.n_skin
    x, y, z = vertices[:n].T
    ax = np.abs(x)
    skin = np.arange(n) > 0  # the top vertex belongs to the scalp only
    ear_rel = np.column_stack([ax - (a.ear_x + 0.004), y - a.ear_y, z - a.ear_z]) / [0.016, a.ear_half_height * 1.25, a.ear_half_depth * 1.35]
    ear = np.sum(ear_rel**2, axis=1) < 1.0
    face = skin & (z > 0.012) & (y < a.brow_y + 0.022) & (y > a.chin_centre_y - a.chin_half_height - 0.012) & (ax < 0.062) & ~ear
    eye_dist = np.linalg.norm(np.column_stack([ax - a.eye_x, y - a.eye_y, z - a.eye_z]), axis=1)
    eye_region = skin & (eye_dist < 0.024) & (z > a.eye_z - 0.01)
    lips = skin & (ax < a.mouth_half_width + 0.002) & (y < a.mouth_y + 0.011) & (y > a.mouth_y - 0.0135) & (z > 0.035)
    nose = skin & (ax < 0.021) & (y < a.nasion_y + 0.002) & (y > a.nose_tip_y - 0.016) & (z > 0.058) & ~eye_region
    forehead = skin & (y >= a.brow_y + 0.01) & (y < 0.098) & (z > 0.015) & (ax < 0.058)
    back = ((z < -0.03) & (y > -0.065)) | ((z < -0.005) & (y > 0.03))
    scalp = (np.arange(n) == 0) | ((y > 0.09) | back) & ~ear & ~forehead
    neck = skin & (y < -0.085) & ~face & ~(z > a.chin_centre_z - 0.02)
    masks = {
        "face": np.flatnonzero(face),
        "left_eyeball": layout.left_eyeball,
        "right_eyeball": layout.right_eyeball,
        "eye_region": np.flatnonzero(eye_region),
        "lips": np.flatnonzero(lips),
        "nose": np.flatnonzero(nose),
        "forehead": np.flatnonzero(forehead),
        "scalp": np.flatnonzero(scalp),
        "neck": np.flatnonzero(neck),
        "left_ear": np.flatnonzero(ear & (x > 0)),
        "right_ear": np.flatnonzero(ear & (x < 0)),
        "boundary": layout.grid_index(layout.n_rows - 1, np.arange(layout.n_columns)),
    }
    return {name: np.asarray(masks[name], dtype=np.int64) for name in MASK_NAMES}
