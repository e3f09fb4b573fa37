"""Landmark embedding of the demo head in DECA's layout (iBUG 68 points).

Static points 17..67 are placed at anatomical positions derived from :class:`Anatomy` and
projected onto the skin along -z (frontmost hit); the inner lip points sit on the edges of the
mouth pocket's lip rows so they part when the jaw opens. The jaw contour (0..16) is a U from
the subject's right ear level (-x) over the chin to the left. For the dynamic table, each
contour level is a horizontal slice of the face from its jaw-line point to the midline; for a
head turned by yaw ``y`` (right-handed about +y), the far side's point is the slice point
furthest out as an orthographic camera looking down -z sees it (its silhouette), and the near
side keeps the jaw-line point. Rotating about the neck joint instead of the origin only
translates the view, which does not change which point is outermost.
"""

from __future__ import annotations

import numpy as np

from flamefit.flame.demo_head.anatomy import Anatomy
from flamefit.flame.demo_head.geometry import N_POCKET_ROWS, HeadLayout
from flamefit.flame.landmark_contour import contour_table, frontal_hits

def jaw_line_xy(anatomy: Anatomy) -> np.ndarray:
    """``(17, 2)`` model-space (x, y) of the frontal jaw contour 0..16 (0 at -x, 8 the chin)."""
    angle = np.pi * np.arange(17) / 16
    c, s = np.cos(angle), np.sin(angle)
    x = -np.sign(c) * np.abs(c) ** 0.62 * 0.061
    y = 0.016 - (0.016 - (anatomy.chin_centre_y - anatomy.chin_half_height + 0.0015)) * s**1.6
    return np.stack([x, y], 1)


def _slit_point(anatomy: Anatomy, side: float, u: float, v: float) -> tuple[float, float]:
    """(x, y) of a point in the eye slit's frame (u along the tilted slit, outward positive)."""
    c, s = np.cos(anatomy.slit_tilt), np.sin(anatomy.slit_tilt)
    return side * (anatomy.eye_x + c * u - s * v), anatomy.eye_y + s * u + c * v


def static_targets_xy(anatomy: Anatomy) -> np.ndarray:
    """``(51, 2)`` model-space (x, y) of iBUG points 17..67 before projection onto the skin
    (the inner lips 60..67 are replaced by pocket-edge points in :func:`landmark_embedding`)."""
    a = anatomy
    brow_x = np.array([0.052, 0.043, 0.033, 0.022, 0.012])
    brow_y = a.brow_y + np.array([-0.004, 0.001, 0.003, 0.002, -0.001])
    pts = [np.stack([-brow_x, brow_y], 1), np.stack([brow_x[::-1], brow_y[::-1]], 1)]
    pts.append(np.stack([np.zeros(4), [a.nasion_y - 0.002, 0.018, 0.007, a.nose_tip_y]], 1))
    pts.append(np.array([[-0.012, -0.015], [-0.006, -0.018], [0.0, -0.019], [0.006, -0.018], [0.012, -0.015]])
               + [0.0, a.nose_tip_y + 0.006])
    w, h = a.slit_half_width, a.slit_half_height
    margin = 0.0008
    for side, order in ((-1.0, "right"), (1.0, "left")):
        up = 0.0002 + h + margin
        low = -0.0006 - h * 0.8 - margin
        outer = _slit_point(a, side, w + margin, 0.0)
        inner = _slit_point(a, side, -(w + margin), 0.0)
        upper = [_slit_point(a, side, k * w / 3, up) for k in (1, -1)]  # outer third, inner third
        lower = [_slit_point(a, side, k * w / 3, low) for k in (1, -1)]
        if order == "right":  # 36 outer, 37, 38 upper outer->inner, 39 inner, 40, 41 lower inner->outer
            pts.append(np.array([outer, upper[0], upper[1], inner, lower[1], lower[0]]))
        else:  # 42 inner, 43, 44 upper inner->outer, 45 outer, 46, 47 lower outer->inner
            pts.append(np.array([inner, upper[1], upper[0], outer, lower[0], lower[1]]))
    cx = a.mouth_half_width * 0.8
    my = a.mouth_y
    outer_lip = np.array(
        [[-cx, my], [-0.014, my + 0.0065], [-0.006, my + 0.0095], [0.0, my + 0.0085], [0.006, my + 0.0095],
         [0.014, my + 0.0065], [cx, my], [0.015, my - 0.0075], [0.008, my - 0.0105], [0.0, my - 0.011],
         [-0.008, my - 0.0105], [-0.015, my - 0.0075]]
    )
    inner_lip = np.array(
        [[-cx + 0.002, my], [-0.009, my], [0.0, my], [0.009, my], [cx - 0.002, my], [0.009, my], [0.0, my], [-0.009, my]]
    )
    pts += [outer_lip, inner_lip]
    return np.concatenate(pts)


def _pocket_edge_points(layout: HeadLayout, vertices: np.ndarray, faces: np.ndarray, x_targets: np.ndarray, upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """Triangles and barycentrics at the front edge of the upper (A-B) or lower (E-F) pocket
    strip, at the grid columns nearest ``x_targets (N,)``."""
    row_a = layout.pocket_first_row if upper else layout.pocket_first_row + N_POCKET_ROWS - 1
    row_b = row_a + 1 if upper else row_a - 1
    cols = np.arange(layout.n_columns)
    xs = vertices[layout.grid_index(row_a, cols), 0]
    front = vertices[layout.grid_index(row_a, cols), 2] > 0.0
    face_lookup = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    out_f, out_b = [], []
    for x in x_targets:
        c = int(np.argmin(np.abs(xs - x) + 10.0 * ~front))
        c2 = c + 1 if x >= xs[c] else c - 1
        va, va2 = layout.grid_index(row_a, c), layout.grid_index(row_a, c2)
        vb = layout.grid_index(row_b, c)
        key = tuple(sorted((int(va), int(va2), int(vb))))
        if key not in face_lookup:
            vb = layout.grid_index(row_b, c2)
            key = tuple(sorted((int(va), int(va2), int(vb))))
        fi = face_lookup[key]
        t = np.clip((x - xs[c]) / (xs[c2] - xs[c]), 0.0, 1.0)
        weights = {int(va): 1.0 - t, int(va2): t, int(vb): 0.0}
        out_f.append(fi)
        out_b.append([weights[int(k)] for k in faces[fi]])
    return np.array(out_f), np.array(out_b)


def landmark_embedding(layout: HeadLayout, anatomy: Anatomy, vertices: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """The embedding as numpy arrays with DECA's keys and shapes (see module docstring)."""
    skin_faces = np.flatnonzero(np.all(faces < layout.n_skin, axis=1))
    targets = static_targets_xy(anatomy)
    hit, bary = frontal_hits(targets, vertices, faces[skin_faces])
    if np.any(hit < 0):
        raise RuntimeError(f"demo head landmarks {np.flatnonzero(hit < 0) + 17} missed the skin")
    static_f, static_b = skin_faces[hit], bary
    for ids, upper in (((61, 62, 63), True), ((65, 66, 67), False)):
        idx = np.array(ids) - 17
        f, b = _pocket_edge_points(layout, vertices, faces, targets[idx, 0], upper)
        static_f[idx], static_b[idx] = f, b
    dyn_f, dyn_b = dynamic_contour(anatomy, vertices, faces[skin_faces])
    dyn_f = skin_faces[dyn_f]
    full_f = np.concatenate([dyn_f[0], static_f])[None]
    full_b = np.concatenate([dyn_b[0], static_b])[None]
    return {
        "static_lmk_faces_idx": static_f.astype(np.int64),
        "static_lmk_bary_coords": static_b.astype(np.float32),
        "dynamic_lmk_faces_idx": dyn_f.astype(np.int64),
        "dynamic_lmk_bary_coords": dyn_b.astype(np.float32),
        "full_lmk_faces_idx": full_f.astype(np.int64),
        "full_lmk_bary_coords": full_b.astype(np.float32),
    }


def dynamic_contour(anatomy: Anatomy, vertices: np.ndarray, skin_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(79, 17)`` contour triangles (rows into ``skin_faces``) and ``(79, 17, 3)`` barycentrics
    (:func:`flamefit.flame.landmark_contour.contour_table` on the anatomy's jaw line)."""
    return contour_table(jaw_line_xy(anatomy), vertices, skin_faces)
