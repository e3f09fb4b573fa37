"""The open demo head: files, formats, proportions, anatomy of landmarks, rig and blendshapes.

Uses the session fixtures ``demo_head_dir`` / ``demo_model`` (one generation per session).
"""

from __future__ import annotations

import filecmp
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from flamefit.flame.demo_head import EXPRESSION_COMPONENTS, FILE_NAMES, ensure_demo_head
from flamefit.flame.lbs import lbs


@pytest.fixture(scope="module")
def raw_model(demo_head_dir):
    with open(demo_head_dir / "generic_model.pkl", "rb") as fh:
        return pickle.load(fh, encoding="latin1")


@pytest.fixture(scope="module")
def embedding(demo_head_dir, demo_model):
    from flamefit.flame.landmark_embedding import load_landmark_embedding

    return load_landmark_embedding(demo_head_dir / "landmark_embedding.npy", n_faces=demo_model.n_faces)


def points(vertices: np.ndarray, faces: np.ndarray, face_idx: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """``(L, 3)`` points given as triangles and barycentrics on ``vertices (V, 3)``."""
    return np.einsum("lk,lkc->lc", bary, vertices[faces[face_idx]])


def posed(model, pose: np.ndarray | None = None, expression: dict[int, float] | None = None) -> np.ndarray:
    """``(V, 3)`` vertices of the demo model with a ``(15,)`` pose and expression coefficients."""
    coeffs = torch.zeros(1, model.n_shape + model.n_expression, dtype=torch.float64)
    for k, value in (expression or {}).items():
        coeffs[0, model.n_shape + k] = value
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    verts, _ = lbs(
        coeffs, t(np.zeros((1, 15)) if pose is None else pose[None]), t(model.v_template),
        t(np.concatenate([model.shapedirs, model.exprdirs], axis=2)), t(model.posedirs),
        t(model.j_regressor), torch.as_tensor(model.parents), t(model.weights),
    )
    return verts[0].numpy()


def test_files_and_raw_format(demo_head_dir, raw_model):
    assert sorted(p.name for p in demo_head_dir.iterdir()) == sorted(FILE_NAMES)
    assert "NOT FLAME" in (demo_head_dir / "README.txt").read_text()
    m = raw_model
    V = m["v_template"].shape[0]
    assert 5000 <= V <= 6000 and 10000 <= m["f"].shape[0] <= 12000
    assert m["f"].dtype == np.uint32 and m["v_template"].dtype == np.float64
    assert type(m["shapedirs"]) is np.ndarray and m["shapedirs"].shape == (V, 3, 150)
    assert m["posedirs"].shape == (V, 3, 36) and np.abs(m["posedirs"]).max() > 1e-3
    assert isinstance(m["J_regressor"], scipy.sparse.csc_matrix) and m["J_regressor"].shape == (5, V)
    np.testing.assert_array_equal(m["kintree_table"], [[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]])
    np.testing.assert_allclose(m["J"], m["J_regressor"] @ m["v_template"])
    np.testing.assert_allclose(m["weights"].sum(1), 1.0, atol=1e-12)
    assert m["bs_style"] == "lbs" and m["bs_type"] == "lrotmin"
    assert (m["n_shape"], m["n_expression"]) == (100, 50) and "not FLAME" in m["model_name"]


def test_landmark_file_holds_torch_tensors(demo_head_dir):
    d = np.load(demo_head_dir / "landmark_embedding.npy", allow_pickle=True).item()
    assert d["dynamic_lmk_faces_idx"].dtype == torch.long and d["dynamic_lmk_faces_idx"].shape == (79, 17)
    assert d["dynamic_lmk_bary_coords"].dtype == torch.float32 and d["dynamic_lmk_bary_coords"].shape == (79, 17, 3)
    assert d["static_lmk_faces_idx"].shape == (51,) and d["full_lmk_bary_coords"].shape == (1, 68, 3)


@pytest.mark.slow  # generates the demo head again from scratch
def test_generation_is_deterministic_and_cache_is_reused(demo_head_dir, tmp_path):
    again = ensure_demo_head(cache_dir=tmp_path)
    for name in FILE_NAMES:
        if name != "landmark_embedding.npy":  # pickled torch tensors differ in storage keys
            assert filecmp.cmp(demo_head_dir / name, again / name, shallow=False), name
    first = np.load(demo_head_dir / "landmark_embedding.npy", allow_pickle=True).item()
    second = np.load(again / "landmark_embedding.npy", allow_pickle=True).item()
    for key, value in first.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(second[key]), err_msg=key)
    stamp = (again / "generic_model.pkl").stat().st_mtime_ns
    assert ensure_demo_head(cache_dir=tmp_path) == again
    assert (again / "generic_model.pkl").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [again.name]  # no staging folders left


def test_proportions_and_symmetry(demo_model):
    v = demo_model.v_template
    assert v[:, 1].max() == pytest.approx(0.12, abs=0.008)
    assert v[:, 1].min() == pytest.approx(-0.16, abs=1e-6)
    assert v[:, 2].max() == pytest.approx(0.095, abs=0.006)  # nose tip
    assert v[:, 2].min() == pytest.approx(-0.112, abs=0.008)
    assert 0.145 <= np.ptp(v[:, 0]) <= 0.17
    mirrored = v * [-1.0, 1.0, 1.0]
    # every vertex has an exact mirror image
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(v).query(mirrored)
    assert dist.max() < 1e-9


def test_eyeballs_in_sockets_and_visible(demo_model, demo_head_dir):
    from flamefit.flame.vertex_masks import load_vertex_masks

    masks = load_vertex_masks(demo_head_dir / "FLAME_masks.pkl", demo_model.n_vertices)
    v = demo_model.v_template
    for name, joint, side in (("left_eyeball", 3, 1.0), ("right_eyeball", 4, -1.0)):
        eye = v[masks[name]]
        centre = demo_model.j_regressor[joint] @ v
        np.testing.assert_allclose(centre, eye.mean(0), atol=1e-12)
        assert side * centre[0] > 0.02 and centre[1] == pytest.approx(0.03, abs=0.006)
        assert np.linalg.norm(eye - centre, axis=1) == pytest.approx(0.012, abs=1e-3)
        front = eye[np.argmax(eye[:, 2])]
        skin = v[masks["face"]]
        near = skin[np.hypot(skin[:, 0] - front[0], skin[:, 1] - front[1]) < 0.002]
        assert near[:, 2].max() < front[2]  # the pupil is in front of the skin: visible
        ring = skin[np.abs(np.hypot(skin[:, 0] - centre[0], skin[:, 1] - centre[1]) - 0.016) < 0.002]
        assert np.median(ring[:, 2]) > centre[2] + 0.008  # covered around by lids and cheeks


def test_landmarks_sit_on_their_anatomy(demo_model, embedding):
    v, f = demo_model.v_template, demo_model.faces
    lm = points(v, f, embedding.full_faces, embedding.full_bary)
    nose_tip = v[np.argmax(v[:, 2])]
    assert np.linalg.norm(lm[30] - nose_tip) < 0.006
    left_eye, right_eye = demo_model.j_regressor[3] @ v, demo_model.j_regressor[4] @ v
    for i, centre in ((36, right_eye), (39, right_eye), (42, left_eye), (45, left_eye)):
        assert 0.010 < np.hypot(*(lm[i, :2] - centre[:2])) < 0.017, i
    assert lm[36, 0] < lm[39, 0] < 0 < lm[42, 0] < lm[45, 0]
    assert lm[48, 0] < -0.015 and lm[54, 0] > 0.015 and abs(lm[48, 1] + 0.04) < 0.004
    assert lm[8, 1] == pytest.approx(lm[:17, 1].min()) and lm[8, 1] < -0.07 and abs(lm[8, 0]) < 1e-9
    assert np.all(np.diff(lm[:9, 0]) > 0) and np.all(np.diff(lm[8:17, 0]) > 0)
    assert lm[17:22, 0].max() < 0 < lm[22:27, 0].min() and np.all(lm[17:27, 1] > lm[36:48, 1].max())
    assert np.all(np.diff(lm[27:31, 1]) < 0)  # bridge runs down to the tip
    assert lm[62, 1] > lm[66, 1] - 1e-9 and abs(lm[62, 1] - lm[66, 1]) < 0.002  # lips closed


def test_dynamic_contour_follows_the_silhouette(demo_model, embedding):
    v, f = demo_model.v_template, demo_model.faces
    row0 = points(v, f, embedding.dynamic_faces[0], embedding.dynamic_bary[0])
    np.testing.assert_allclose(row0, points(v, f, embedding.full_faces[:17], embedding.full_bary[:17]))
    yaw = np.deg2rad(30.0)
    row30 = points(v, f, embedding.dynamic_faces[30], embedding.dynamic_bary[30])
    assert not np.allclose(row30, row0)
    np.testing.assert_allclose(row30[:8], row0[:8])  # near side (-x) stays on the jaw line
    c, s = np.cos(yaw), np.sin(yaw)
    seen_x = lambda p: p[..., 0] * c + p[..., 2] * s  # noqa: E731
    skin = v[: demo_model.j_regressor[3].nonzero()[0].min()]
    for level in (10, 11, 12, 13):  # far side (+x) cheek levels: on the silhouette
        p = row30[level]
        # nothing on the face between the midline and the jaw line is further out at this yaw
        band = skin[(np.abs(skin[:, 1] - p[1]) < 0.0015) & (skin[:, 2] > 0.0) & (skin[:, 0] >= 0.0) & (skin[:, 0] <= row0[level, 0])]
        assert seen_x(p) > seen_x(band).max() - 0.002, level
        assert seen_x(p) >= seen_x(row0[level]) - 1e-9
    moved = np.linalg.norm(row30[9:] - row0[9:], axis=1)
    assert moved.max() > 0.005  # some far-side points slid off the jaw line
    mirror = points(v, f, embedding.dynamic_faces[39 + 30], embedding.dynamic_bary[39 + 30])
    # mirror images up to the triangulation's diagonals (not mirror-symmetric): 0.1 mm
    np.testing.assert_allclose(mirror[::-1] * [-1, 1, 1], row30, atol=1e-4)


def test_jaw_opens_the_mouth(demo_model, embedding):
    pose = np.zeros(15)
    pose[6] = 0.3
    for verts_closed, verts_open in ((demo_model.v_template, posed(demo_model, pose)),):
        lm_closed = points(verts_closed, demo_model.faces, embedding.static_faces, embedding.static_bary)
        lm_open = points(verts_open, demo_model.faces, embedding.static_faces, embedding.static_bary)
        gap_closed = lm_closed[62 - 17, 1] - lm_closed[66 - 17, 1]
        gap_open = lm_open[62 - 17, 1] - lm_open[66 - 17, 1]
        assert gap_closed < 0.002 and gap_open > 0.012
        assert lm_open[8 - 17 + 17 - 17 + 40, 1] < lm_closed[40, 1] + 1e-9  # lower lip point 57 moves down


def test_eye_close_puts_the_lid_in_front_of_the_eyeball(demo_model, demo_head_dir):
    from flamefit.flame.vertex_masks import load_vertex_masks

    masks = load_vertex_masks(demo_head_dir / "FLAME_masks.pkl", demo_model.n_vertices)
    closed = posed(demo_model, expression={4: 2.0})
    eye = closed[masks["left_eyeball"]]
    pupil = eye[0]
    skin = closed[masks["face"]]
    near = skin[np.hypot(skin[:, 0] - pupil[0], skin[:, 1] - pupil[1]) < 0.003]
    assert near[:, 2].max() > pupil[2] + 0.0005
    opened = demo_model.v_template[masks["face"]]
    right = masks["right_eyeball"][0]
    near_r = opened[np.hypot(opened[:, 0] - closed[right, 0], opened[:, 1] - closed[right, 1]) < 0.003]
    assert near_r[:, 2].max() < closed[right, 2]  # the other eye stays open


def test_blendshape_scaling(demo_model):
    rms = np.sqrt((demo_model.shapedirs**2).sum(1).mean(0)) * 1e3
    assert rms[0] == pytest.approx(3.0, rel=1e-6) and np.all(np.diff(rms) < 0) and rms[-1] > 0.15
    gram = np.einsum("vck,vcl->kl", demo_model.shapedirs, demo_model.shapedirs)
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-12)
    peak = np.abs(demo_model.exprdirs).max(axis=(0, 1)) * 1e3
    assert np.all((peak > 1.0) & (peak < 6.0))
    assert len(EXPRESSION_COMPONENTS) <= demo_model.n_expression
    # eyeballs move rigidly with identity
    eye = demo_model.j_regressor[3].nonzero()[0]
    d = demo_model.shapedirs[eye]
    np.testing.assert_allclose(d - d.mean(0, keepdims=True), 0.0, atol=1e-12)


def test_weights_and_posedirs(demo_model, demo_head_dir):
    from flamefit.flame.vertex_masks import load_vertex_masks

    masks = load_vertex_masks(demo_head_dir / "FLAME_masks.pkl", demo_model.n_vertices)
    w = demo_model.weights
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1.0)
    assert np.all(w[masks["left_eyeball"], 3] == 1.0) and np.all(w[masks["right_eyeball"], 4] == 1.0)
    assert np.all(w[masks["boundary"], 0] == 1.0)
    assert w[masks["scalp"], 2].max() < 0.05
    chin = np.argmin(demo_model.v_template[:, 1] + 10 * (np.abs(demo_model.v_template[:, 0]) > 0.005) - 5 * (demo_model.v_template[:, 2] > 0.04))
    assert w[chin, 2] > 0.9
    joints = demo_model.j_regressor @ demo_model.v_template
    assert joints[2] == pytest.approx([0.0, -0.02, -0.01], abs=0.008)
    assert joints[0, 1] == pytest.approx(-0.16) and joints[1, 1] < -0.03


def test_masks_cover_their_regions(demo_model, demo_head_dir):
    from flamefit.flame.vertex_masks import load_vertex_masks

    masks = load_vertex_masks(demo_head_dir / "FLAME_masks.pkl", demo_model.n_vertices)
    v = demo_model.v_template
    assert v[masks["lips"], 1].mean() == pytest.approx(-0.04, abs=0.005)
    assert v[masks["nose"], 2].max() == v[:, 2].max()
    assert v[masks["forehead"], 1].min() > v[masks["nose"], 1].max() - 0.01
    assert np.all(v[masks["left_ear"], 0] > 0.05) and np.all(v[masks["right_ear"], 0] < -0.05)
    assert np.all(v[masks["boundary"], 1] == -0.16) and v[masks["neck"], 1].max() < -0.08
    assert v[masks["scalp"], 1].max() == v[:, 1].max()
    assert len(np.intersect1d(masks["face"], masks["scalp"])) == 0


def test_uv_atlas_and_albedo(demo_model, demo_head_dir):
    from flamefit.flame.texture_space_io import load_texture_space
    from flamefit.flame.uv_template import load_uv_template

    uv = load_uv_template(demo_head_dir / "head_template_mesh.obj", demo_model.n_vertices, demo_model.faces)
    assert uv.vt.shape[0] > demo_model.n_vertices and uv.vt.min() >= 0 and uv.vt.max() <= 1
    tri = uv.vt[uv.ft]
    area = 0.5 * ((tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1]))
    assert np.all(area > 0)  # consistently oriented, no folded triangles
    face = np.isin(demo_model.faces, np.load(demo_head_dir / "FLAME_masks.pkl", allow_pickle=True)["face"]).all(1)
    assert area[face].sum() / area.sum() > 0.3  # the face gets a large share of the texels
    ts = load_texture_space(demo_head_dir / "FLAME_texture.npz")
    assert ts.mean.shape == (256, 256, 3) and 10 <= ts.n_components <= 16
    for k in range(ts.n_components):
        for c in (-3.0, 3.0):
            img = ts.mean + c * ts.basis[..., k]
            assert img.min() >= -0.01 and img.max() <= 1.01
    # smooth: no texel-to-texel jumps inside the face region of the mean
    centre = ts.mean[80:160, 80:180]
    assert np.abs(np.diff(centre, axis=1)).max() < 0.08
