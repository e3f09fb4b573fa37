"""Named proportions of the open demo head and the signed distance field they define.

The head's skin is the zero level set of a smooth signed distance field (negative inside) built
from ellipsoids, capsules and slots joined with smooth minima: cranium, mid face, jaw, chin,
neck, nose, brows, cheekbones, lips, ears, eye sockets with lid shells and lid slits. Every
number is a field of :class:`Anatomy` (model space: metres, y up, +z toward the viewer, +x the
subject's left), so identity and expression blendshapes are made by changing these numbers and
re-sampling the surface along the same rays (see :mod:`flamefit.flame.demo_head.geometry`).

Features that come in pairs are written for the subject's left (+x) and mirrored through
``|x|``, so the field is exactly symmetric about ``x = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Anatomy:
    """Proportions of the demo head, in metres (model space) unless stated otherwise.

    Centres of paired features are given for the subject's left side (+x).
    """

    cranium_centre_y: float = 0.028
    cranium_centre_z: float = -0.018
    cranium_half_width: float = 0.072
    cranium_half_height: float = 0.092
    cranium_half_depth: float = 0.094
    forehead_slope: float = 0.0  # shears the cranium's front forward (+) with height

    midface_centre_y: float = -0.002
    midface_centre_z: float = 0.004
    midface_half_width: float = 0.064
    midface_half_height: float = 0.068
    midface_half_depth: float = 0.066

    jaw_centre_y: float = -0.046
    jaw_centre_z: float = 0.002
    jaw_half_width: float = 0.054
    jaw_half_height: float = 0.040
    jaw_half_depth: float = 0.064

    chin_centre_y: float = -0.066
    chin_centre_z: float = 0.057
    chin_half_width: float = 0.019
    chin_half_height: float = 0.014
    chin_half_depth: float = 0.015

    neck_centre_z: float = -0.022
    neck_half_width: float = 0.054
    neck_half_depth: float = 0.052
    neck_top_y: float = -0.03

    nasion_y: float = 0.030
    nasion_z: float = 0.071
    nose_tip_y: float = -0.006
    nose_tip_z: float = 0.086
    nose_bridge_radius: float = 0.0065
    nose_tip_radius: float = 0.0105
    nose_tip_width: float = 0.0115
    alar_x: float = 0.0135
    alar_y: float = -0.0125
    alar_z: float = 0.072
    alar_radius: float = 0.0075

    brow_x: float = 0.031
    brow_y: float = 0.047
    brow_z: float = 0.061
    brow_half_width: float = 0.024
    brow_half_height: float = 0.010
    brow_half_depth: float = 0.011

    cheekbone_x: float = 0.043
    cheekbone_y: float = 0.006
    cheekbone_z: float = 0.047
    cheekbone_radius: float = 0.015
    cheek_fullness: float = 0.0  # metres of outward padding of the lower cheeks

    eye_x: float = 0.0315
    eye_y: float = 0.030
    eye_z: float = 0.057
    eyeball_radius: float = 0.012
    lid_clearance: float = 0.0016  # lid shell radius minus eyeball radius
    socket_depth: float = 0.007
    slit_half_width: float = 0.0135
    slit_half_height: float = 0.0047
    slit_tilt: float = 0.06  # radians, outer corner up
    upper_lid_closure: float = 0.0  # 0 open .. 1 closed, left eye
    upper_lid_closure_right: float = 0.0

    mouth_y: float = -0.040
    mouth_half_width: float = 0.028
    upper_lip_y: float = -0.0345
    upper_lip_z: float = 0.0655
    upper_lip_half_width: float = 0.026
    upper_lip_thickness: float = 0.0068
    lower_lip_y: float = -0.0465
    lower_lip_z: float = 0.0635
    lower_lip_half_width: float = 0.022
    lower_lip_thickness: float = 0.0078
    pocket_depth: float = 0.016

    ear_x: float = 0.071
    ear_y: float = 0.012
    ear_z: float = -0.014
    ear_half_height: float = 0.030
    ear_half_depth: float = 0.018
    ear_thickness: float = 0.009

    @property
    def eye_centre(self) -> np.ndarray:
        """``(3,)`` centre of the left eyeball (the right one is mirrored)."""
        return np.array([self.eye_x, self.eye_y, self.eye_z])


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distance fields; ``k`` (metres) is the blend width."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smooth_subtract(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Field ``a`` with the solid of field ``b`` carved out, blended over ``k`` metres."""
    return -smooth_min(-a, b, k)


def ellipsoid(points: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance of ``(..., 3)`` points to an axis-aligned ellipsoid.

    Uses the first-order bound ``k0 (k0 - 1) / k1`` that is exact on the surface and smooth.
    """
    q = (points - np.asarray(centre, dtype=float)) / np.asarray(radii, dtype=float)
    k0 = np.sqrt(np.einsum("...i,...i->...", q, q))
    q1 = q / np.asarray(radii, dtype=float)
    k1 = np.sqrt(np.einsum("...i,...i->...", q1, q1))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def capsule(points: np.ndarray, a, b, radius_a: float, radius_b: float) -> np.ndarray:
    """Signed distance (approximate) of ``(..., 3)`` points to a tapered capsule from a to b."""
    a = np.asarray(a, dtype=float)
    ab = np.asarray(b, dtype=float) - a
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(points - closest, axis=-1) - (radius_a + (radius_b - radius_a) * t)


def mirrored(points: np.ndarray) -> np.ndarray:
    """``(..., 3)`` points with x replaced by ``|x|`` (evaluate left-side features on both)."""
    out = points.copy()
    out[..., 0] = np.abs(out[..., 0])
    return out


def eye_slit(points: np.ndarray, anatomy: Anatomy, closure: np.ndarray) -> np.ndarray:
    """Signed distance of a lid slit (the palpebral fissure) around each eye.

    An almond-shaped slot through the lid shell, tilted outer corner up; ``closure`` ``(...)``
    (0 open, 1 closed) lowers the upper edge onto the lower one. ``points`` are already
    mirrored to the left side.
    """
    d = points - anatomy.eye_centre
    c, s = np.cos(anatomy.slit_tilt), np.sin(anatomy.slit_tilt)
    u = c * d[..., 0] + s * d[..., 1]
    v = -s * d[..., 0] + c * d[..., 1]
    # almond profile: height shrinks toward the corners, the opening's middle sits a bit high
    shape = np.clip(1.0 - (u / anatomy.slit_half_width) ** 2, 0.0, None) ** 0.6
    open_half = anatomy.slit_half_height * shape
    open_centre = -0.0006 + 0.0010 * shape
    # closing lowers the upper edge onto the fixed lower edge
    half = open_half * (1.0 - closure)
    centre = open_centre - open_half * closure
    dv = np.abs(v - centre) - half
    du = np.abs(u) - anatomy.slit_half_width
    depth = np.abs(d[..., 2] - 0.011) - 0.009  # from just in front of the centre outward
    return np.maximum(np.maximum(dv, du), depth)


def head_sdf(points: np.ndarray, anatomy: Anatomy) -> np.ndarray:
    """Signed distance (approximate, metres; negative inside) of ``(..., 3)`` model-space points
    to the demo head's skin, without the mouth pocket (added on the mesh, see geometry)."""
    a = anatomy
    p = points
    m = mirrored(p)
    sheared = p.copy()
    sheared[..., 2] -= a.forehead_slope * np.clip(p[..., 1] - a.cranium_centre_y, 0.0, None)
    d = ellipsoid(
        sheared,
        (0.0, a.cranium_centre_y, a.cranium_centre_z),
        (a.cranium_half_width, a.cranium_half_height, a.cranium_half_depth),
    )
    mid = ellipsoid(
        p,
        (0.0, a.midface_centre_y, a.midface_centre_z),
        (a.midface_half_width, a.midface_half_height, a.midface_half_depth),
    )
    d = smooth_min(d, mid, 0.02)
    jaw = ellipsoid(
        p, (0.0, a.jaw_centre_y, a.jaw_centre_z), (a.jaw_half_width, a.jaw_half_height, a.jaw_half_depth)
    )
    d = smooth_min(d, jaw, 0.02)
    chin = ellipsoid(
        p,
        (0.0, a.chin_centre_y, a.chin_centre_z),
        (a.chin_half_width, a.chin_half_height, a.chin_half_depth),
    )
    d = smooth_min(d, chin, 0.012)
    neck_q = np.stack(
        [p[..., 0] / a.neck_half_width, (p[..., 2] - a.neck_centre_z) / a.neck_half_depth], axis=-1
    )
    neck = (np.linalg.norm(neck_q, axis=-1) - 1.0) * min(a.neck_half_width, a.neck_half_depth)
    neck = np.maximum(neck, p[..., 1] - a.neck_top_y)
    d = smooth_min(d, neck, 0.03)
    cheek = ellipsoid(
        m, (a.cheekbone_x, a.cheekbone_y, a.cheekbone_z), (a.cheekbone_radius * 1.25, a.cheekbone_radius, a.cheekbone_radius)
    )
    d = smooth_min(d, cheek, 0.02)
    cheek_pad = ellipsoid(
        m,
        (0.036 + 0.5 * a.cheek_fullness, -0.026, 0.027 + a.cheek_fullness),
        (0.021, 0.022, 0.02),
    )
    d = smooth_min(d, cheek_pad, 0.022)
    brow = ellipsoid(
        m, (a.brow_x, a.brow_y, a.brow_z), (a.brow_half_width, a.brow_half_height, a.brow_half_depth)
    )
    d = smooth_min(d, brow, 0.022)
    # eye sockets, then the lid shell around each eyeball, then the slit through it
    eye = a.eye_centre
    socket = ellipsoid(m, eye + (0.0, -0.001, 0.012 + 0.011 - a.socket_depth), (0.021, 0.016, 0.011))
    d = smooth_subtract(d, socket, 0.008)
    lid_shell = np.linalg.norm(m - eye, axis=-1) - (a.eyeball_radius + a.lid_clearance)
    d = smooth_min(d, lid_shell, 0.006)
    closure = np.where(p[..., 0] >= 0.0, a.upper_lid_closure, a.upper_lid_closure_right)
    d = smooth_subtract(d, eye_slit(m, a, closure), 0.0012)
    nose = capsule(
        p, (0.0, a.nasion_y, a.nasion_z), (0.0, a.nose_tip_y + 0.004, a.nose_tip_z - 0.006),
        a.nose_bridge_radius, a.nose_tip_radius * 0.8,
    )
    d = smooth_min(d, nose, 0.01)
    tip = ellipsoid(
        p, (0.0, a.nose_tip_y, a.nose_tip_z), (a.nose_tip_width, a.nose_tip_radius, a.nose_tip_radius)
    )
    d = smooth_min(d, tip, 0.006)
    alar = ellipsoid(m, (a.alar_x, a.alar_y, a.alar_z), (a.alar_radius, a.alar_radius * 0.9, a.alar_radius * 1.1))
    d = smooth_min(d, alar, 0.006)
    upper = ellipsoid(
        p,
        (0.0, a.upper_lip_y, a.upper_lip_z),
        (a.upper_lip_half_width, a.upper_lip_thickness, a.upper_lip_thickness * 1.6),
    )
    d = smooth_min(d, upper, 0.012)
    lower = ellipsoid(
        p,
        (0.0, a.lower_lip_y, a.lower_lip_z),
        (a.lower_lip_half_width, a.lower_lip_thickness, a.lower_lip_thickness * 1.5),
    )
    d = smooth_min(d, lower, 0.012)
    ear = ellipsoid(m, (a.ear_x, a.ear_y, a.ear_z), (a.ear_thickness, a.ear_half_height, a.ear_half_depth))
    d = smooth_min(d, ear, 0.008)
    concha = ellipsoid(m, (a.ear_x + a.ear_thickness * 0.9, a.ear_y - 0.004, a.ear_z + 0.002), (0.004, 0.011, 0.008))
    d = smooth_subtract(d, concha, 0.003)
    return d
