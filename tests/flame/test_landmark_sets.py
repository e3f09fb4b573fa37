"""The named 68-landmark index sets: they partition the layout, and their sides are the subject's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.flame import landmark_sets as sets


def test_regions_partition_the_68_points():
    regions = (sets.CONTOUR, sets.BROWS, sets.NOSE, sets.EYES, sets.MOUTH)
    together = np.concatenate([sets.indices(r) for r in regions])
    np.testing.assert_array_equal(together, np.arange(sets.N_LANDMARKS))
    np.testing.assert_array_equal(sets.indices(sets.INNER), np.arange(17, 68))
    assert len(sets.indices(sets.CONTOUR)) == sets.N_CONTOUR == 17
    assert len(sets.indices(sets.INNER)) == sets.N_INNER == 51


@pytest.mark.parametrize("whole, parts", [
    ("BROWS", ("RIGHT_BROW", "LEFT_BROW")),
    ("NOSE", ("NOSE_BRIDGE", "NOSTRILS")),
    ("EYES", ("RIGHT_EYE", "LEFT_EYE")),
    ("MOUTH", ("OUTER_LIPS", "INNER_LIPS")),
])
def test_each_region_is_its_parts(whole, parts):
    joined = np.concatenate([sets.indices(getattr(sets, p)) for p in parts])
    np.testing.assert_array_equal(joined, sets.indices(getattr(sets, whole)))


def test_sets_index_numpy_and_torch_alike():
    points = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)
    assert points[sets.RIGHT_EYE].shape == (6, 2)
    np.testing.assert_array_equal(torch.as_tensor(points)[None, sets.MOUTH].numpy()[0], points[48:68])
    np.testing.assert_array_equal(sets.indices(sets.NOSE_TIP), [30])


def test_inter_ocular_distance():
    points = np.zeros((68, 2))
    points[sets.RIGHT_EYE] = [10.0, 20.0]
    points[sets.LEFT_EYE] = [13.0, 24.0]
    assert sets.inter_ocular_distance(points) == pytest.approx(5.0)
    assert isinstance(sets.inter_ocular_distance(points), float)
    batch = np.stack([points, points * 2])  # (2, 68, 2)
    np.testing.assert_allclose(sets.inter_ocular_distance(batch), [5.0, 10.0])


def test_sides_are_the_subjects_like_the_eye_joints(demo_model, demo_head_dir):
    """On the demo head, LEFT_EYE lies around the left-eye joint (3, at +x) and RIGHT_EYE around
    the right-eye joint (4); the contour starts on the subject's right (-x)."""
    from flamefit.flame.landmark_embedding import load_landmark_embedding

    embedding = load_landmark_embedding(demo_head_dir / "landmark_embedding.npy", n_faces=demo_model.n_faces)
    v, f = demo_model.v_template, demo_model.faces
    landmarks = np.einsum("lk,lkc->lc", embedding.full_bary, v[f[embedding.full_faces]])
    right_centre, left_centre = sets.eye_centres(landmarks[:, :2])
    left_joint, right_joint = demo_model.j_regressor[3] @ v, demo_model.j_regressor[4] @ v
    assert np.linalg.norm(left_centre - left_joint[:2]) < 0.01 < left_joint[0]
    assert np.linalg.norm(right_centre - right_joint[:2]) < 0.01 and right_joint[0] < 0
    assert landmarks[sets.RIGHT_BROW, 0].max() < 0 < landmarks[sets.LEFT_BROW, 0].min()
    assert landmarks[0, 0] < landmarks[sets.CHIN, 0] < landmarks[16, 0]
