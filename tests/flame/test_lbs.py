"""The LBS layer against an independent per-vertex computation written here in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from flamefit.flame.flame_layer import FLAME, contour_row_for_yaw
from flamefit.flame.lbs import batch_rodrigues
from flamefit.flame.model_data import FlameModelData, LandmarkEmbedding

PARENTS = np.array([-1, 0, 1, 1, 1])


def random_model(rng: np.random.Generator, n_vertices: int = 60) -> FlameModelData:
    """A small FLAME-format model with random (but valid) arrays."""
    v_template = rng.normal(scale=0.05, size=(n_vertices, 3))
    faces = np.stack([np.arange(n_vertices - 2), np.arange(1, n_vertices - 1),
                      np.arange(2, n_vertices)], axis=1)
    weights = rng.random((n_vertices, 5)) ** 3
    weights /= weights.sum(axis=1, keepdims=True)
    j_regressor = rng.random((5, n_vertices)) * (rng.random((5, n_vertices)) < 0.2)
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    return FlameModelData(
        v_template=v_template,
        faces=faces,
        shapedirs=rng.normal(scale=0.003, size=(n_vertices, 3, 8)),
        exprdirs=rng.normal(scale=0.003, size=(n_vertices, 3, 6)),
        posedirs=rng.normal(scale=0.002, size=(n_vertices, 3, 36)),
        j_regressor=j_regressor,
        weights=weights,
        parents=PARENTS.copy(),
        source="random test model",
    )


def reference_vertices(model: FlameModelData, shape, expression, pose, translation):
    """Vertices by the published formula, one vertex at a time, with scipy's rotations."""
    v_shaped = (model.v_template + model.shapedirs @ shape + model.exprdirs @ expression)
    joints = model.j_regressor @ v_shaped
    rotations = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
    feature = np.concatenate([(rotations[k] - np.eye(3)).ravel() for k in range(1, 5)])
    v_posed = v_shaped + model.posedirs @ feature
    world = []
    for k, parent in enumerate(model.parents):
        local = np.eye(4)
        local[:3, :3] = rotations[k]
        local[:3, 3] = joints[k] - (joints[parent] if parent >= 0 else 0.0)
        world.append(local if parent < 0 else world[parent] @ local)
    out = np.empty_like(v_posed)
    for v in range(v_posed.shape[0]):
        point = np.zeros(3)
        for k in range(len(world)):
            offset = np.append(v_posed[v] - joints[k], 1.0)  # point relative to joint k
            point += model.weights[v, k] * (world[k] @ offset)[:3]
        out[v] = point + translation
    return out


def check_against_reference(model: FlameModelData, rng: np.random.Generator, atol: float) -> None:
    layer = FLAME(model, dtype=torch.float64)
    for _ in range(3):
        shape = rng.normal(size=model.n_shape)
        expression = rng.normal(size=model.n_expression)
        pose = rng.normal(scale=0.3, size=15)
        translation = rng.normal(scale=0.01, size=3)
        ours = layer(
            shape=torch.tensor(shape)[None], expression=torch.tensor(expression)[None],
            pose=torch.tensor(pose)[None], translation=torch.tensor(translation)[None],
        ).vertices[0].numpy()
        expected = reference_vertices(model, shape, expression, pose, translation)
        np.testing.assert_allclose(ours, expected, atol=atol, rtol=0)


def test_lbs_matches_reference_on_random_model():
    rng = np.random.default_rng(0)
    check_against_reference(random_model(rng), rng, atol=1e-10)


def test_lbs_matches_reference_on_demo_head(demo_model):
    check_against_reference(demo_model, np.random.default_rng(1), atol=1e-5)


def test_zero_parameters_give_template(demo_model):
    layer = FLAME(demo_model)
    out = layer()
    np.testing.assert_allclose(out.vertices[0].numpy(), demo_model.v_template, atol=1e-6)


def test_six_vector_pose_is_global_plus_jaw():
    rng = np.random.default_rng(2)
    layer = FLAME(random_model(rng), dtype=torch.float64)
    short = torch.tensor(rng.normal(scale=0.2, size=(2, 6)))
    full = torch.zeros(2, 15, dtype=torch.float64)
    full[:, :3], full[:, 6:9] = short[:, :3], short[:, 3:]
    torch.testing.assert_close(layer(pose=short).vertices, layer(pose=full).vertices)


def test_batch_items_are_independent():
    rng = np.random.default_rng(3)
    layer = FLAME(random_model(rng), dtype=torch.float64)
    shape = torch.tensor(rng.normal(size=(4, 8)))
    pose = torch.tensor(rng.normal(scale=0.3, size=(4, 15)))
    batched = layer(shape=shape, pose=pose).vertices
    for i in range(4):
        single = layer(shape=shape[i : i + 1], pose=pose[i : i + 1]).vertices
        torch.testing.assert_close(batched[i : i + 1], single)


def test_fewer_coefficients_are_zero_padded_and_too_many_refused():
    rng = np.random.default_rng(4)
    layer = FLAME(random_model(rng), dtype=torch.float64)
    short = torch.tensor(rng.normal(size=(1, 3)))
    padded = torch.nn.functional.pad(short, (0, 5))
    torch.testing.assert_close(layer(shape=short).vertices, layer(shape=padded).vertices)
    with pytest.raises(ValueError, match="n_shape"):
        layer(shape=torch.zeros(1, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_expression=7 but"):
        FLAME(random_model(rng), n_expression=7)


def test_rodrigues_matches_scipy():
    rotvec = np.random.default_rng(5).normal(size=(10, 3))
    ours = batch_rodrigues(torch.tensor(rotvec)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rotvec).as_matrix(), atol=1e-7)


def test_contour_row_follows_deca_indexing():
    degrees = torch.tensor([0.0, 10.2, 39.0, 55.0, -0.6, -1.0, -12.0, -39.0, -70.0])
    rows = contour_row_for_yaw(torch.deg2rad(degrees))
    assert rows.tolist() == [0, 10, 39, 39, 40, 40, 51, 78, 78]


def test_dynamic_landmarks_follow_yaw():
    """The 17 contour landmarks come from the table row picked by the head's yaw."""
    rng = np.random.default_rng(6)
    model = random_model(rng)
    n_faces = model.faces.shape[0]
    dynamic_faces = rng.integers(0, n_faces, size=(79, 17))
    dynamic_bary = rng.dirichlet(np.ones(3), size=(79, 17))
    embedding = LandmarkEmbedding(
        static_faces=rng.integers(0, n_faces, size=51),
        static_bary=rng.dirichlet(np.ones(3), size=51),
        dynamic_faces=dynamic_faces, dynamic_bary=dynamic_bary,
        full_faces=rng.integers(0, n_faces, size=68),
        full_bary=rng.dirichlet(np.ones(3), size=68),
    )
    layer = FLAME(model, embedding, dtype=torch.float64)
    for yaw_deg, row in ((0.0, 0), (20.0, 20), (-20.0, 59)):
        pose = torch.zeros(1, 15, dtype=torch.float64)
        pose[0, 1] = np.deg2rad(yaw_deg)  # rotation about y of the global joint
        out = layer(pose=pose)
        verts = out.vertices[0].numpy()
        corners = verts[model.faces[dynamic_faces[row]]]  # (17, 3, 3)
        expected = np.einsum("lk,lkc->lc", dynamic_bary[row], corners)
        np.testing.assert_allclose(out.landmarks[0, :17].numpy(), expected, atol=1e-12)
    # The neck's yaw counts too: the chain neck -> root is composed.
    pose = torch.zeros(1, 15, dtype=torch.float64)
    pose[0, 1], pose[0, 4] = np.deg2rad(10.0), np.deg2rad(15.0)
    assert layer.contour_rows(pose).item() == 25


def test_rodrigues_gradient_at_zero_is_the_skew_matrix():
    rotvec = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(lambda r: batch_rodrigues(r), rotvec)
    # dR/dr_x at zero is the skew matrix of e_x: entries (2,1) = 1, (1,2) = -1.
    d_dx = jacobian[0, :, :, 0, 0]
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(d_dx, expected)
