"""UV atlas of the demo head (OBJ convention: v = 0 is the bottom row of the texture image).

The skin grid is unwrapped with its seam at the back of the head (column 0 is duplicated at
u = 1) and the top vertex duplicated once per column; columns and rows facing the face get
more texture width and height, so the face fills the centre of the image. Each eyeball is an
azimuthal-equidistant disc (pupil at the centre, the back pole duplicated around the rim) in
the strip below the skin's chart.
"""

from __future__ import annotations

import numpy as np

from flamefit.flame.demo_head.geometry import EYEBALL_SEGMENTS, HeadLayout, eyeball_faces, eyeball_unit_sphere

SKIN_V_RANGE = (0.17, 0.995)  # bottom (neck rim) and top of the skin chart
SKIN_U_MARGIN = 0.005
EYE_DISC_CENTRES = ((0.7, 0.083), (0.3, 0.083))  # left eye (+x, image right), right eye
EYE_DISC_RADIUS = 0.075
FACE_EMPHASIS = 1.6  # extra texture width/height given to the face's columns/rows


def _cumulative(weights: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(N + 1,)`` edges from ``lo`` to ``hi`` with gaps proportional to ``weights (N,)``."""
    edges = np.concatenate([[0.0], np.cumsum(weights)])
    return lo + (hi - lo) * edges / edges[-1]


def skin_uv_grid(layout: HeadLayout, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u of each column edge ``(C + 1,)`` and v of each row ``(R,)``, from the neutral
    ``vertices (V, 3)``: gaps follow the surface spacing, enlarged where the face is."""
    grid = vertices[1 : layout.n_skin].reshape(layout.n_rows, layout.n_columns, 3)
    face_rows = slice(layout.n_rows // 6, layout.n_rows * 5 // 6)
    ring = grid[face_rows]
    col_gap = np.linalg.norm(np.roll(ring, -1, axis=1) - ring, axis=2).mean(axis=0)  # c -> c+1
    mid = 0.5 * (ring[:, :, 2] + np.roll(ring[:, :, 2], -1, axis=1)).mean(axis=0)
    col_w = col_gap * (1.0 + FACE_EMPHASIS * (mid > 0.02))
    # columns start at the back seam: u runs from the subject's right (-x) across the face
    u = _cumulative(col_w, SKIN_U_MARGIN, 1.0 - SKIN_U_MARGIN)
    front = grid[:, :, 2] > 0.02
    row_gap = np.linalg.norm(np.diff(grid, axis=0), axis=2)
    row_w = (row_gap * (1.0 + FACE_EMPHASIS * front[1:])).mean(axis=1) + 1e-4
    top_gap = np.linalg.norm(grid[0] - vertices[0], axis=1).mean()
    v = _cumulative(np.concatenate([[top_gap], row_w]), SKIN_V_RANGE[1], SKIN_V_RANGE[0])
    return u, v[1:]


def uv_atlas(layout: HeadLayout, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates ``vt (T, 2)`` and per-corner indices ``ft (F, 3)`` matching
    ``layout.faces``; T > V because of the seam, the top vertex and the eyeballs' back poles."""
    C, R = layout.n_columns, layout.n_rows
    u, v = skin_uv_grid(layout, vertices)
    grid_vt = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 2)  # (R * (C + 1), 2)
    top_vt = np.stack([0.5 * (u[:-1] + u[1:]), np.full(C, SKIN_V_RANGE[1])], 1)
    n_grid = R * (C + 1)
    cols = np.arange(C)
    gi = lambda r, c: r * (C + 1) + c  # noqa: E731
    fan = np.stack([n_grid + cols, gi(0, cols), gi(0, cols + 1)], 1)
    r = np.arange(R - 1)[:, None]
    tl, tr, bl, br = gi(r, cols), gi(r, cols + 1), gi(r + 1, cols), gi(r + 1, cols + 1)
    quads = np.concatenate([np.stack([tl, bl, br], -1).reshape(-1, 3), np.stack([tl, br, tr], -1).reshape(-1, 3)])
    vts, fts = [grid_vt, top_vt], [fan, quads]
    offset = n_grid + C
    _, params = eyeball_unit_sphere()
    local = eyeball_faces()
    n_eye = len(params)
    back = n_eye - 1
    rim_azimuth = (np.arange(EYEBALL_SEGMENTS) + 0.5) * 2 * np.pi / EYEBALL_SEGMENTS
    for (cu, cv), flip in zip(EYE_DISC_CENTRES, (1.0, -1.0)):
        radius = EYE_DISC_RADIUS * np.sqrt(params[:, 0] / np.pi)  # more texels for the iris
        disc = np.stack([cu + flip * radius * np.cos(params[:, 1]), cv + radius * np.sin(params[:, 1])], 1)
        rim = np.stack([cu + flip * EYE_DISC_RADIUS * np.cos(rim_azimuth), cv + EYE_DISC_RADIUS * np.sin(rim_azimuth)], 1)
        eye_vt = np.concatenate([disc[:back], rim])
        ft = local.copy() if flip > 0 else local[:, ::-1].copy()
        rear_rows = np.arange(len(local) - EYEBALL_SEGMENTS, len(local))
        rear_col = np.argmax(ft[rear_rows] == back, axis=1)
        ft[rear_rows, rear_col] = back + np.arange(EYEBALL_SEGMENTS)
        vts.append(eye_vt)
        fts.append(ft + offset)
        offset += len(eye_vt)
    return np.concatenate(vts), np.concatenate(fts).astype(np.int64)
