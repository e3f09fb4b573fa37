"""The generated albedo model shipped with the converted ICT-FaceKit head (ICT has none).

Every texel of the atlas is traced back to a point of the neutral head and the mean and
components are smooth functions of that point and of ICT's landmarks: skin tone, redness,
yellowness, lip colour, brow darkness, stubble, cheek blush, iris hue and lightness, sclera
tint, scalp shade and a nose/forehead tone. It is generated, not measured: a plausible start for
fitting colour, to be replaced by a space built from photos (``flamefit build-texture-space``).
RGB in [0, 1]; components are changes per unit (unit-variance) coefficient.
"""

from __future__ import annotations

import numpy as np

from flamefit.flame.uv_atlas import (ALBEDO_COMPONENT_NAMES, bump, fill_outside, named_albedo_basis,
                                     rasterise_atlas)

RESOLUTION = 256
COMPONENT_NAMES = ALBEDO_COMPONENT_NAMES
SKIN_RGB = np.array([0.78, 0.60, 0.50])
LIP_RGB = np.array([0.68, 0.40, 0.40])
MOUTH_RGB = np.array([0.30, 0.12, 0.12])
SCLERA_RGB = np.array([0.92, 0.90, 0.87])
IRIS_RGB = np.array([0.38, 0.26, 0.18])
PUPIL_RGB = np.array([0.03, 0.02, 0.02])


def _brow_band(points: np.ndarray, brow: np.ndarray, half_height: float = 0.0032) -> np.ndarray:
    """A smooth band along the brow polyline ``brow (5, 3)`` (inner to outer, the left side;
    ``points`` mirrored onto it): Gaussian across, fading out past both ends and behind."""
    a, b = brow[:-1, :2], brow[1:, :2]  # (S, 2) segments in (x, y)
    q = points[..., None, :2]  # (H, W, 1, 2)
    t = np.clip(((q - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0.0, 1.0)
    distance = np.linalg.norm(q - (a + t[..., None] * (b - a)), axis=-1).min(axis=-1)
    inner, outer = brow[0, 0], brow[-1, 0]
    x = points[..., 0]
    ends = np.clip((x - inner) / 0.004 + 1.0, 0.0, 1.0) * np.clip((outer - x) / 0.006 + 1.0, 0.0, 1.0)
    front = points[..., 2] > brow[:, 2].min() - 0.015
    return np.exp(-0.5 * (distance / half_height) ** 2) * ends * front


def albedo_model(neutral: np.ndarray, faces: np.ndarray, vt: np.ndarray, ft: np.ndarray,
                 landmarks: np.ndarray, masks: dict[str, np.ndarray], eye_centres: np.ndarray, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(H, W, 3)`` and basis ``(H, W, 3, K)`` in the atlas ``vt``/``ft``.

    Args:
        neutral: ``(V, 3)`` metres; faces: ``(F, 3)``; vt, ft: the atlas.
        landmarks: ``(68, 3)`` the landmark positions on the neutral mesh.
        masks: region masks (``left_eyeball``, ``right_eyeball``, ``mouth_socket``,
            ``scalp``); eye_centres: ``(2, 3)`` left, right.
    """
    n = len(neutral)
    face_map, bary_map = rasterise_atlas(vt, ft, resolution)
    covered = face_map >= 0
    corners = faces[np.maximum(face_map, 0)]  # (H, W, 3)
    p = np.einsum("hwk,hwkc->hwc", bary_map, neutral[corners])

    def flag(ids) -> np.ndarray:
        per_vertex = np.zeros(n, dtype=bool)
        per_vertex[ids] = True
        return covered & per_vertex[corners[..., 0]]

    eyeball = flag(np.concatenate([masks["left_eyeball"], masks["right_eyeball"]]))
    mouth = flag(masks["mouth_socket"])
    skin = covered & ~eyeball & ~mouth
    m = np.concatenate([np.abs(p[..., :1]), p[..., 1:]], axis=-1)  # mirrored onto the left side
    lm_m = np.concatenate([np.abs(landmarks[:, :1]), landmarks[:, 1:]], axis=1)

    # Iris and pupil painted on the outer eyeball around each eye's axis (through the cornea's
    # apex, the eyeball point furthest from its centre): an iris of ~6 mm radius on the ~15 mm
    # eyeball spans ~0.42 rad, the pupil ~0.17 rad.
    gaze = np.full(p.shape[:2], np.pi)
    for ids, centre in ((masks["left_eyeball"], eye_centres[0]), (masks["right_eyeball"], eye_centres[1])):
        distance = np.linalg.norm(neutral[ids] - centre, axis=1)
        apex = neutral[ids][distance >= np.percentile(distance, 98)].mean(axis=0)
        axis = (apex - centre) / np.linalg.norm(apex - centre)
        local = p - centre
        angle = np.arccos(np.clip(local @ axis / np.maximum(np.linalg.norm(local, axis=-1), 1e-9), -1.0, 1.0))
        gaze = np.where(flag(ids), angle, gaze)
    soft_iris = eyeball / (1.0 + np.exp((gaze - 0.42) / 0.025))
    pupil = eyeball / (1.0 + np.exp((gaze - 0.17) / 0.015))

    mouth_c = landmarks[48:60].mean(axis=0)
    mouth_w = 0.5 * np.linalg.norm(landmarks[54] - landmarks[48])
    lip_h = 0.5 * abs(landmarks[51, 1] - landmarks[57, 1])
    lips = skin * bump(p, mouth_c + [0, 0.0005, 0], (mouth_w * 0.85, lip_h * 1.0, 0.02))
    brows = skin * _brow_band(m, lm_m[22:27] + [0.0, 0.002, 0.0])
    chin = landmarks[8]
    stubble = skin * np.clip(bump(p, (0.0, (chin[1] + mouth_c[1]) / 2, chin[2] - 0.01), (0.045, 0.025, 0.04))
                             - 0.9 * lips, 0.0, 1.0)
    cheek = lm_m[[1, 2, 31]].mean(axis=0) * [1.0, 1.0, 1.0] + [0.01, 0.0, 0.0]
    blush = skin * bump(m, cheek, (0.016, 0.016, 0.03))
    scalp_ids = np.zeros(n, dtype=bool)
    scalp_ids[masks["scalp"]] = True
    scalp = skin * scalp_ids[corners[..., 0]]
    tone = skin * (bump(p, landmarks[30] + [0, 0.004, 0], (0.01, 0.016, 0.03))
                   + bump(p, (0.0, landmarks[19, 1] + 0.03, landmarks[27, 2]), (0.03, 0.02, 0.04)))

    skin_f = skin.astype(float)[..., None]
    mean = skin_f * SKIN_RGB
    mean = mean + lips[..., None] * (LIP_RGB - SKIN_RGB) + brows[..., None] * -0.3 * SKIN_RGB
    mean = mean + scalp[..., None] * -0.04
    mean = mean + mouth.astype(float)[..., None] * MOUTH_RGB
    eye_f = eyeball.astype(float)[..., None]
    eye_rgb = SCLERA_RGB + soft_iris[..., None] * (IRIS_RGB - SCLERA_RGB) + pupil[..., None] * (PUPIL_RGB - IRIS_RGB)
    mean = mean + eye_f * eye_rgb
    basis = named_albedo_basis(mean, skin, lips, brows, stubble, blush, soft_iris - pupil,
                               eye_f[..., 0] - soft_iris, scalp, tone)
    mean = fill_outside(mean, covered)
    basis = fill_outside(basis, covered)
    return np.clip(mean, 0.0, 1.0).astype(np.float32), basis.astype(np.float32)
