"""Topology and vertex positions of the open demo head.

The skin is a latitude/longitude grid: one vertex at the top of the skull, then ``N_ROWS`` rings
of ``N_COLUMNS`` vertices each down to the open neck rim. Column 0 is the back of the head
(the UV seam), column ``N_COLUMNS // 2`` the facial midline; columns crowd toward the face.
Every skin vertex lies on a fixed ray (from a point inside the head for the skull and face
rows, horizontal from the neck axis for the neck rows) and is placed where the ray leaves the
signed distance field of :mod:`flamefit.flame.demo_head.anatomy`. Six rows at the lip line are then
folded into the head inside the mouth's width, forming a closed mouth pocket whose upper
wall follows the skull and lower wall follows the jaw, so that opening the jaw opens the mouth.

Two eyeball spheres follow the skin: vertex 0 of each is the front pole (the pupil), then
``EYEBALL_RINGS`` rings of ``EYEBALL_SEGMENTS`` vertices, then the back pole.

Vertex order: ``[top, skin rows (row-major), left eyeball, right eyeball]``; vertex ``j`` of
the right eyeball is the mirror image of vertex ``j`` of the left one.

All positions are in model space: metres, y up, +z toward the viewer, +x the subject's left.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from flamefit.flame.demo_head.anatomy import Anatomy, head_sdf

N_COLUMNS = 80
COLUMN_UNIFORMITY = 0.4  # 1 = evenly spaced columns; smaller crowds them toward the face
RAY_CENTRE = np.array([0.0, 0.005, -0.012])
# (first polar angle, last polar angle, rows) in degrees from the top, per band of the head
HEAD_ROW_BANDS = (
    (5.5, 48.0, 10),  # skull
    (51.0, 63.0, 5),  # forehead and brows
    (64.5, 84.0, 13),  # eyes
    (86.0, 106.0, 8),  # nose and cheeks
    (107.8, 111.0, 3),  # upper lip
)
POCKET_BAND = (112.4, 117.6)  # six rows folded into the mouth pocket (A..F)
LOWER_HEAD_BANDS = (
    (119.4, 134.0, 7),  # lower lip and chin
    (137.0, 152.0, 5),  # under the chin
)
NECK_ROW_Y = (-0.112, -0.124, -0.136, -0.148, -0.16)
N_POCKET_ROWS = 6
POCKET_GAP = 0.0003  # metres between the closed lips' inner surfaces
EYEBALL_RINGS = 11
EYEBALL_SEGMENTS = 16


def _row_polar_angles() -> np.ndarray:
    """``(R_head,)`` polar angles (radians from +y) of the rows cast from ``RAY_CENTRE``."""
    bands = [np.linspace(a, b, n) for a, b, n in HEAD_ROW_BANDS]
    bands.append(np.linspace(*POCKET_BAND, N_POCKET_ROWS))
    bands += [np.linspace(a, b, n) for a, b, n in LOWER_HEAD_BANDS]
    return np.deg2rad(np.concatenate(bands))


def column_azimuths(n_columns: int = N_COLUMNS) -> np.ndarray:
    """``(C,)`` azimuths (radians, 0 = facing +z, +pi/2 = +x); column 0 is -pi, the back seam.

    The map ``s -> pi (u s + (1 - u) s^3)`` of evenly spaced ``s`` is odd, so column ``c`` and
    column ``(C - c) % C`` are mirror images.
    """
    s = -1.0 + 2.0 * np.arange(n_columns) / n_columns
    return np.pi * (COLUMN_UNIFORMITY * s + (1.0 - COLUMN_UNIFORMITY) * s**3)


@dataclass(frozen=True)
class HeadLayout:
    """Fixed topology and ray set of the demo head (independent of its proportions)."""

    n_rows: int
    n_columns: int
    head_polar: np.ndarray  # (R_head,) polar angles of the rows cast from RAY_CENTRE
    azimuths: np.ndarray  # (C,)
    pocket_first_row: int  # index of row A (the upper lip's inner edge)

    @property
    def n_skin(self) -> int:
        return 1 + self.n_rows * self.n_columns

    @property
    def n_eyeball(self) -> int:
        return 2 + EYEBALL_RINGS * EYEBALL_SEGMENTS

    @property
    def n_vertices(self) -> int:
        return self.n_skin + 2 * self.n_eyeball

    @property
    def left_eyeball(self) -> np.ndarray:
        """``(n_eyeball,)`` vertex indices of the left (+x) eyeball."""
        return np.arange(self.n_skin, self.n_skin + self.n_eyeball)

    @property
    def right_eyeball(self) -> np.ndarray:
        return self.left_eyeball + self.n_eyeball

    def grid_index(self, row, column) -> np.ndarray:
        """Vertex index of skin grid cell ``(row, column)`` (arrays broadcast)."""
        return 1 + np.asarray(row) * self.n_columns + np.asarray(column) % self.n_columns

    @cached_property
    def skin_row(self) -> np.ndarray:
        """``(n_skin,)`` grid row of each skin vertex; -1 for the top vertex."""
        return np.concatenate([[-1], np.repeat(np.arange(self.n_rows), self.n_columns)])

    @cached_property
    def skin_column(self) -> np.ndarray:
        """``(n_skin,)`` grid column of each skin vertex; -1 for the top vertex."""
        return np.concatenate([[-1], np.tile(np.arange(self.n_columns), self.n_rows)])

    @cached_property
    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Origins and unit directions ``(n_skin, 3)`` of the rays the skin vertices lie on."""
        n_head = len(self.head_polar)
        polar = np.concatenate([[0.0], np.repeat(self.head_polar, self.n_columns)])
        azim = np.concatenate([[0.0], np.tile(self.azimuths, n_head)])
        head_dirs = np.stack(
            [np.sin(polar) * np.sin(azim), np.cos(polar), np.sin(polar) * np.cos(azim)], axis=1
        )
        head_origins = np.broadcast_to(RAY_CENTRE, head_dirs.shape)
        neck_y = np.repeat(np.asarray(NECK_ROW_Y), self.n_columns)
        neck_azim = np.tile(self.azimuths, len(NECK_ROW_Y))
        neck_dirs = np.stack([np.sin(neck_azim), np.zeros_like(neck_azim), np.cos(neck_azim)], 1)
        neck_origins = np.stack(
            [np.zeros_like(neck_y), neck_y, np.full_like(neck_y, Anatomy().neck_centre_z)], 1
        )
        return np.concatenate([head_origins, neck_origins]), np.concatenate([head_dirs, neck_dirs])

    @cached_property
    def mirror(self) -> np.ndarray:
        """``(V,)`` index of each vertex's mirror image across ``x = 0``."""
        skin = np.concatenate(
            [[0], self.grid_index(self.skin_row[1:], (self.n_columns - self.skin_column[1:]))]
        )
        left, right = self.left_eyeball, self.right_eyeball
        return np.concatenate([skin, right, left])

    @cached_property
    def faces(self) -> np.ndarray:
        """``(F, 3)`` int64 triangles, counter-clockwise seen from outside."""
        c = np.arange(self.n_columns)
        fan = np.stack([np.zeros_like(c), self.grid_index(0, c), self.grid_index(0, c + 1)], 1)
        r = np.arange(self.n_rows - 1)[:, None]
        tl, tr = self.grid_index(r, c), self.grid_index(r, c + 1)
        bl, br = self.grid_index(r + 1, c), self.grid_index(r + 1, c + 1)
        quads = np.concatenate(
            [np.stack([tl, bl, br], -1).reshape(-1, 3), np.stack([tl, br, tr], -1).reshape(-1, 3)]
        )
        eye = eyeball_faces()
        left = eye + self.n_skin
        right = eye[:, ::-1] + self.n_skin + self.n_eyeball
        return np.concatenate([fan, quads, left, right]).astype(np.int64)


def make_layout() -> HeadLayout:
    """The demo head's fixed grid."""
    polar = _row_polar_angles()
    pocket_first = sum(n for _, _, n in HEAD_ROW_BANDS)
    return HeadLayout(
        n_rows=len(polar) + len(NECK_ROW_Y),
        n_columns=N_COLUMNS,
        head_polar=polar,
        azimuths=column_azimuths(),
        pocket_first_row=pocket_first,
    )


def eyeball_unit_sphere() -> tuple[np.ndarray, np.ndarray]:
    """Unit-sphere eyeball vertices ``(n_eyeball, 3)`` (front pole first, +z forward) and their
    ``(n_eyeball, 2)`` (polar angle from +z, azimuth) parameters."""
    polar = np.concatenate(
        [[0.0], np.repeat(np.arange(1, EYEBALL_RINGS + 1) * np.pi / (EYEBALL_RINGS + 1), EYEBALL_SEGMENTS), [np.pi]]
    )
    azim = np.concatenate(
        [[0.0], np.tile(np.arange(EYEBALL_SEGMENTS) * 2 * np.pi / EYEBALL_SEGMENTS, EYEBALL_RINGS), [0.0]]
    )
    unit = np.stack([np.sin(polar) * np.cos(azim), np.sin(polar) * np.sin(azim), np.cos(polar)], 1)
    return unit, np.stack([polar, azim], 1)


def eyeball_faces() -> np.ndarray:
    """``(F_eye, 3)`` triangles of one eyeball (local vertex indices), outward-facing."""
    seg = np.arange(EYEBALL_SEGMENTS)
    nxt = (seg + 1) % EYEBALL_SEGMENTS
    ring = lambda r, s: 1 + r * EYEBALL_SEGMENTS + s  # noqa: E731
    back = 1 + EYEBALL_RINGS * EYEBALL_SEGMENTS
    front = np.stack([np.zeros_like(seg), ring(0, seg), ring(0, nxt)], 1)
    r = np.arange(EYEBALL_RINGS - 1)[:, None]
    a, b, c, d = ring(r, seg), ring(r, nxt), ring(r + 1, seg), ring(r + 1, nxt)
    quads = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)])
    rear = np.stack([np.full_like(seg, back), ring(EYEBALL_RINGS - 1, nxt), ring(EYEBALL_RINGS - 1, seg)], 1)
    return np.concatenate([front, quads, rear])


def cast_to_surface(
    origins: np.ndarray,
    directions: np.ndarray,
    anatomy: Anatomy,
    t_min: np.ndarray | float,
    t_max: np.ndarray | float,
    n_samples: int,
    n_bisections: int = 20,
) -> np.ndarray:
    """Distance along each ray to where it last leaves the head's field.

    Args:
        origins, directions: ``(N, 3)`` rays in model space (directions unit length).
        t_min, t_max: search window along each ray (scalar or ``(N,)``), metres; the field must
            be negative somewhere in it.
        n_samples: samples of the window before bisecting the last inside-to-outside step.

    Returns:
        ``(N,)`` distances (metres).
    """
    t_min = np.broadcast_to(np.asarray(t_min, dtype=float), origins.shape[:1])
    t_max = np.broadcast_to(np.asarray(t_max, dtype=float), origins.shape[:1])
    steps = np.linspace(0.0, 1.0, n_samples)
    ts = t_min[:, None] + (t_max - t_min)[:, None] * steps[None, :]
    values = head_sdf(origins[:, None, :] + ts[..., None] * directions[:, None, :], anatomy)
    inside = values < 0.0
    last = n_samples - 1 - np.argmax(inside[:, ::-1], axis=1)
    last = np.minimum(last, n_samples - 2)
    rows = np.arange(len(ts))
    lo, hi = ts[rows, last], ts[rows, last + 1]
    for _ in range(n_bisections):
        mid = 0.5 * (lo + hi)
        is_in = head_sdf(origins + mid[:, None] * directions, anatomy) < 0.0
        lo = np.where(is_in, mid, lo)
        hi = np.where(is_in, hi, mid)
    return 0.5 * (lo + hi)


def pinch_strength(x: np.ndarray, anatomy: Anatomy) -> np.ndarray:
    """How far the pocket rows fold into the mouth (1 between the lips, 0 past the corners),
    as a smooth function of model-space ``x`` ``(...)``."""
    t = np.clip((np.abs(x) / anatomy.mouth_half_width - 0.62) / 0.38, 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def fold_mouth_pocket(skin: np.ndarray, layout: HeadLayout, anatomy: Anatomy) -> np.ndarray:
    """Fold the six pocket rows of ``skin`` ``(n_skin, 3)`` into a closed mouth pocket.

    Row A and F become the meeting edges of the upper and lower lip, B..E the pocket's walls.
    Returns a new ``(n_skin, 3)`` array.
    """
    rows = layout.pocket_first_row + np.arange(N_POCKET_ROWS)
    idx = layout.grid_index(rows[:, None], np.arange(layout.n_columns)[None, :])  # (6, C)
    pts = skin[idx]  # (6, C, 3)
    x = 0.5 * (pts[0, :, 0] + pts[-1, :, 0])
    front = (pts[0, :, 2] > 0.0) & (pts[-1, :, 2] > 0.0)
    strength = pinch_strength(x, anatomy) * front
    z_front = 0.5 * (pts[0, :, 2] + pts[-1, :, 2]) - 0.0006
    depth = anatomy.pocket_depth * np.sqrt(np.clip(1.0 - (x / anatomy.mouth_half_width) ** 2, 0.05, 1.0))
    gap = POCKET_GAP
    y_off = np.array([gap, gap, 0.5 * gap, -0.5 * gap, -gap, -gap])
    z_frac = np.array([0.0, 0.45, 1.0, 1.0, 0.45, 0.0])
    target = np.empty_like(pts)
    target[..., 0] = pts[..., 0] * (1.0 - 0.25 * z_frac[:, None])
    target[..., 1] = anatomy.mouth_y + y_off[:, None]
    target[..., 2] = z_front[None, :] - z_frac[:, None] * depth[None, :]
    out = skin.copy()
    out[idx] = pts + strength[None, :, None] * (target - pts)
    return out


def symmetrise(vertices: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average ``(V, 3)`` positions with their mirror images so the mesh is exactly symmetric."""
    flipped = vertices[mirror] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (vertices + flipped)


def eyeball_vertices(layout: HeadLayout, anatomy: Anatomy) -> np.ndarray:
    """``(2 * n_eyeball, 3)`` left then right eyeball vertices for ``anatomy``."""
    unit, _ = eyeball_unit_sphere()
    left = anatomy.eye_centre + anatomy.eyeball_radius * unit
    right = left * np.array([-1.0, 1.0, 1.0])
    return np.concatenate([left, right])


def skin_distances(layout: HeadLayout, anatomy: Anatomy, guess: np.ndarray | None = None) -> np.ndarray:
    """``(n_skin,)`` distance along each skin ray to the surface of ``anatomy``.

    Without ``guess`` the whole ray is searched; with a previous solution ``(n_skin,)`` only a
    window of +-25 mm around it (fast, for small changes of proportions).
    """
    origins, dirs = layout.rays
    if guess is None:
        return cast_to_surface(origins, dirs, anatomy, 0.02, 0.2, 80)
    return cast_to_surface(origins, dirs, anatomy, np.maximum(guess - 0.025, 0.0), guess + 0.025, 26)


def build_vertices(
    layout: HeadLayout, anatomy: Anatomy, guess: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All ``(V, 3)`` vertices of the head with proportions ``anatomy``, and the ray distances
    ``(n_skin,)`` (pass them back as ``guess`` for nearby proportions)."""
    t = skin_distances(layout, anatomy, guess)
    origins, dirs = layout.rays
    skin = fold_mouth_pocket(origins + t[:, None] * dirs, layout, anatomy)
    vertices = np.concatenate([skin, eyeball_vertices(layout, anatomy)])
    return symmetrise(vertices, layout.mirror), t


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(V, 3)`` unit area-weighted vertex normals of a mesh ``(V, 3)``, ``(F, 3)``."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
