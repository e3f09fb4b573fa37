"""Cameras: DECA's orthographic formula, round trips, OpenCV export."""

import math

import cv2
import numpy as np
import pytest
import torch

from flamefit.renderer.cameras import OrthographicCamera, PerspectiveCamera, front_facing_rotation


def random_points(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, n, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([0.3, 0.4, 0.4], dtype=torch.float64)


def test_orthographic_matches_deca_on_hand_computed_numbers():
    cam = OrthographicCamera(torch.tensor([[2.0, 0.1, -0.2]], dtype=torch.float64), (224, 224))
    screen = cam.project(torch.tensor([[[0.3, 0.4, 0.5]]], dtype=torch.float64))
    # x' = 2 * (0.3 + 0.1) = 0.8 -> px = (0.8 + 1) * 112 = 201.6
    # y' = 2 * (0.4 - 0.2) = 0.4 -> py = (1 - 0.4) * 112 = 67.2 ; depth = -(2 * 0.5) = -1
    torch.testing.assert_close(screen[0, 0], torch.tensor([201.6, 67.2, -1.0], dtype=torch.float64))


def test_orthographic_round_trip_and_affine_matrix():
    cam = OrthographicCamera(torch.tensor([[7.5, 0.01, 0.02], [9.0, -0.03, 0.0]], dtype=torch.float64), (200, 300))
    points = random_points()
    screen = cam.project(points)
    torch.testing.assert_close(cam.unproject(screen), points)
    P = cam.affine_matrix()
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], -1)
    torch.testing.assert_close(homogeneous @ P.transpose(1, 2), screen[..., :2])


def test_perspective_round_trip_and_depth():
    cam = PerspectiveCamera.in_front(2, (240, 320), distance=1.2, dtype=torch.float64)
    points = random_points()
    screen = cam.project(points)
    torch.testing.assert_close(screen[..., 2], 1.2 - points[..., 2])  # +z model -> nearer
    torch.testing.assert_close(cam.unproject(screen), points)
    # The model origin projects to the image centre.
    centre = cam.project(torch.zeros(2, 1, 3, dtype=torch.float64))
    torch.testing.assert_close(centre[..., :2], torch.tensor([[[160.0, 120.0]]] * 2, dtype=torch.float64))


def _rodrigues(R):
    rvec, _ = cv2.Rodrigues(R.numpy().astype(np.float64))
    return rvec


def test_perspective_opencv_export_reproduces_projection():
    angle = 0.3
    Ry = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]], dtype=torch.float64)
    R = (front_facing_rotation(1, torch.float64)[0] @ Ry)[None]
    cam = PerspectiveCamera(
        focal=torch.tensor([[900.0, 880.0]], dtype=torch.float64),
        principal_point=torch.tensor([[110.0, 120.0]], dtype=torch.float64),
        R=R, t=torch.tensor([[0.01, -0.02, 1.5]], dtype=torch.float64), image_size=(224, 224),
    )
    points = random_points()[:1]
    K, R_cv, t_cv = cam.to_opencv()
    projected, _ = cv2.projectPoints(points[0].numpy(), _rodrigues(R_cv[0]), t_cv[0].numpy(), K[0].numpy(), None)
    ours = cam.project(points)[0, :, :2].numpy()
    np.testing.assert_allclose(projected[:, 0] + 0.5, ours, atol=1e-9)


@pytest.mark.parametrize("size", [224, 1024])
def test_orthographic_opencv_approximation_within_stated_bound(size):
    cam = OrthographicCamera(torch.tensor([[5.0, 0.0, 0.01]], dtype=torch.float64), (size, size))
    points = random_points()[:1] * torch.tensor([0.8, 0.8, 1.0], dtype=torch.float64)  # |z| <= 0.2
    ortho = cam.project(points)[0, :, :2].numpy()
    assert np.all((ortho > 0) & (ortho < size))
    K, R, t = cam.to_opencv()
    projected, _ = cv2.projectPoints(points[0].numpy(), _rodrigues(R[0]), t[0].numpy(), K[0].numpy(), None)
    error = np.abs(projected[:, 0] + 0.5 - ortho)
    bound = {224: 0.023, 1024: 0.103}[size]
    assert error.max() <= bound
    assert error.max() > 0  # it is an approximation, not a copy


# -- camera models: the fit's parameter vectors ------------------------------------------------

from flamefit.renderer.camera_models import (  # noqa: E402
    CAMERA_MODEL_TYPES,
    OrthographicCameraModel,
    PerspectiveCameraModel,
    camera_model,
)
from flamefit.renderer.choices import CAMERA_MODELS  # noqa: E402

SIZES = [(224, 224), (200, 300)]


def test_camera_model_registry_matches_the_cli_choices():
    assert tuple(CAMERA_MODEL_TYPES) == CAMERA_MODELS
    for name in CAMERA_MODELS:
        model = camera_model(name)
        assert model.name == name and model.n_params == 3
        assert camera_model(model) is model
    assert camera_model("perspective", fov_degrees=20.0).fov_degrees == 20.0
    with pytest.raises(ValueError, match="must be one of"):
        camera_model("fisheye")
    with pytest.raises(ValueError, match="no such setting"):
        camera_model("orthographic", fov_degrees=20.0)


@pytest.mark.parametrize("name", CAMERA_MODELS)
@pytest.mark.parametrize("size", SIZES)
def test_camera_model_initial_camera_round_trip(name, size):
    model = camera_model(name)
    params = model.initial(2, dtype=torch.float64)
    assert params.shape == (2, model.n_params) and params.dtype == torch.float64
    torch.testing.assert_close(params, torch.tensor([{"orthographic": [8.0, 0.0, 0.0],
                                                      "perspective": [0.0, 0.0, 1.0]}[name]] * 2,
                                                    dtype=torch.float64))
    cam = model.camera(params, size)
    assert cam.image_size == size
    points = random_points()
    screen = cam.project(points)
    torch.testing.assert_close(cam.unproject(screen), points)
    height, width = size
    centre = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    # Neutral: the model origin at the image centre, a head-sized object filling the crop.
    torch.testing.assert_close(cam.project(torch.zeros(2, 1, 3, dtype=torch.float64))[..., :2],
                               centre.expand(2, 1, 2))
    head = torch.tensor([[[-0.1, -0.1, 0.0], [0.1, 0.1, 0.0]]], dtype=torch.float64).expand(2, 2, 3)
    extent = (cam.project(head)[:, 1, :2] - cam.project(head)[:, 0, :2]).abs()  # a 20 cm square
    assert (extent > 0.7 * min(size)).all() and (extent < min(size)).all()
    # zoom scales the image about its centre.
    zoomed = model.camera(params, size, zoom=0.5).project(points)[..., :2]
    torch.testing.assert_close(zoomed, centre + 0.5 * (screen[..., :2] - centre))


@pytest.mark.parametrize("name", CAMERA_MODELS)
@pytest.mark.parametrize("size", SIZES)
def test_camera_model_from_similarity_maps_model_xy_to_the_stated_pixels(name, size):
    model = camera_model(name)
    scale = torch.tensor([7.5, 9.0], dtype=torch.float64)
    shift = torch.tensor([[0.01, -0.02], [-0.03, 0.005]], dtype=torch.float64)
    params = model.from_similarity(scale, shift, size)
    assert params.shape == (2, model.n_params)
    points = random_points() * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)  # z = 0
    height, width = size
    half = min(size) / 2.0
    expected_x = width / 2.0 + half * scale[:, None] * (points[..., 0] + shift[:, None, 0])
    expected_y = height / 2.0 - half * scale[:, None] * (points[..., 1] + shift[:, None, 1])
    projected = model.camera(params, size).project(points)
    torch.testing.assert_close(projected[..., 0], expected_x)
    torch.testing.assert_close(projected[..., 1], expected_y)
    # The square crop of HeadScene: an int resolution means (R, R).
    torch.testing.assert_close(model.from_similarity(scale, shift, 224), model.from_similarity(scale, shift, (224, 224)))


def _opencv_pixels(points, K, R, t):
    projected, _ = cv2.projectPoints(points.numpy(), _rodrigues(R), t.numpy(), K.numpy(), None)
    return projected[:, 0] + 0.5  # OpenCV's integer pixel centres -> ours


@pytest.mark.parametrize("name", CAMERA_MODELS)
@pytest.mark.parametrize("size", SIZES)
def test_camera_model_opencv_round_trip_and_projection(name, size):
    model = camera_model(name)
    params = model.from_similarity(torch.tensor([7.5, 9.0], dtype=torch.float64),
                                   torch.tensor([[0.01, -0.02], [-0.03, 0.005]], dtype=torch.float64), size)
    K, R, t = model.to_opencv(params, size)
    assert K.shape == (2, 3, 3) and R.shape == (2, 3, 3) and t.shape == (2, 3)
    torch.testing.assert_close(model.from_opencv(K, R, t, size), params)
    # Unbatched numpy, as read back from a saved camera.
    torch.testing.assert_close(model.from_opencv(K[1].numpy(), R[1].numpy(), t[1].numpy(), size), params[1])
    # float32 (a fit's dtype) passes the form checks too.
    torch.testing.assert_close(model.from_opencv(K.float(), R.float(), t.float(), size), params.float())

    cam = model.camera(params, size)
    points = random_points() * torch.tensor([0.8, 0.8, 1.0], dtype=torch.float64)  # |z| <= 0.2 m
    ours = cam.project(points)[..., :2].numpy()
    height, width = size
    centre = np.array([width / 2.0, height / 2.0])
    for item in range(2):
        opencv = _opencv_pixels(points[item], K[item], R[item], t[item])
        error = np.abs(opencv - ours[item])
        if cam.is_perspective:
            np.testing.assert_allclose(opencv, ours[item], atol=1e-9)
        else:
            # OrthographicCamera.to_opencv's bound: |p - c| * z / (d - z) per coordinate.
            z = points[item, :, 2, None].numpy()
            bound = np.abs(ours[item] - centre) * np.abs(z) / (model.opencv_distance - z)
            assert (error <= bound + 1e-9).all()
            assert error.max() > 0


def test_orthographic_model_from_opencv_accepts_any_distance():
    params = torch.tensor([[7.5, 0.01, -0.02]], dtype=torch.float64)
    K, R, t = OrthographicCameraModel(opencv_distance=3.0).to_opencv(params, (200, 300))
    assert t[0, 2] == 3.0
    torch.testing.assert_close(OrthographicCameraModel().from_opencv(K, R, t, (200, 300)), params)


def _turned(R, angle=0.2):
    turn = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0],
                         [-math.sin(angle), 0, math.cos(angle)]], dtype=R.dtype)
    return R @ turn


@pytest.mark.parametrize("name", CAMERA_MODELS)
def test_camera_model_from_opencv_rejects_other_forms(name):
    model = camera_model(name)
    size = (224, 224)
    K, R, t = model.to_opencv(model.initial(1, dtype=torch.float64), size)

    def rejects(match, K=K, R=R, t=t, size=size):
        with pytest.raises(ValueError, match=match):
            model.from_opencv(K, R, t, size)

    rejects("R must be diag", R=_turned(R))
    off_centre = K.clone()
    off_centre[:, 0, 2] += 3.0
    rejects("principal point", K=off_centre)
    rejects("principal point", size=(224, 320))
    skewed = K.clone()
    skewed[:, 0, 1] = 1.0
    rejects("no skew", K=skewed)
    anisotropic = K.clone()
    anisotropic[:, 1, 1] *= 1.1
    rejects("fx must equal fy", K=anisotropic)
    behind = t.clone()
    behind[:, 2] = -behind[:, 2]
    rejects("t_z must be > 0", t=behind)
    rejects("expected K", t=t[:, :2])


def test_perspective_model_from_opencv_rejects_another_field_of_view():
    size = (224, 224)
    params = torch.tensor([[0.0, 0.01, 1.2]], dtype=torch.float64)
    K, R, t = PerspectiveCameraModel(fov_degrees=20.0).to_opencv(params, size)
    with pytest.raises(ValueError, match=r"field of view of 20 degrees.*this model's is 12\.0"):
        PerspectiveCameraModel().from_opencv(K, R, t, size)
    torch.testing.assert_close(PerspectiveCameraModel(fov_degrees=20.0).from_opencv(K, R, t, size), params)


@pytest.mark.parametrize("name", CAMERA_MODELS)
def test_camera_model_random_is_seeded_and_in_front(name):
    model = camera_model(name)
    first = model.random(4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, model.random(4, torch.Generator().manual_seed(3)))
    assert first.shape == (4, model.n_params)
    screen = model.camera(first, (224, 224)).project(0.4 * random_points(seed=1).float().repeat(2, 1, 1))  # a 16 cm face
    assert ((screen[..., :2] > 0) & (screen[..., :2] < 224)).all()


@pytest.mark.parametrize("name", CAMERA_MODELS)
@pytest.mark.parametrize("size", SIZES)
def test_camera_model_step_scale_makes_every_parameter_move_the_image_alike(name, size):
    """A small step of ``step * scale`` in a translation shifts the image by ``step`` S-pixels
    (S = min(H, W) / 2); in the size parameter it changes the image's size by the fraction
    ``step``, whatever the camera's scale or distance."""
    model = camera_model(name)
    params = model.random(2, torch.Generator().manual_seed(5)).double()
    params[1] = model.from_similarity(torch.tensor([12.0], dtype=torch.float64),
                                      torch.tensor([[0.01, -0.01]], dtype=torch.float64), size)[0]
    scale = model.step_scale(params, size)
    assert scale.shape == params.shape and (scale > 0).all()
    half, step = min(size) / 2.0, 1e-4
    points = 0.01 * random_points().double()  # within a cm of the model origin: a small object
    base = model.camera(params, size).project(points)[..., :2]
    size_column = {"orthographic": 0, "perspective": 2}[name]
    for column in range(model.n_params):
        moved = params.clone()
        moved[:, column] += step * scale[:, column]
        shifted = model.camera(moved, size).project(points)[..., :2]
        if column == size_column:
            centre = base.mean(dim=1, keepdim=True)
            growth = ((shifted - shifted.mean(dim=1, keepdim=True)).norm(dim=-1)
                      / (base - centre).norm(dim=-1)).mean(dim=1)
            torch.testing.assert_close(growth.sub(1.0).abs(), torch.full((2,), step, dtype=torch.float64),
                                       rtol=0.05, atol=0.0)
        else:
            moved_by = (shifted - base).norm(dim=-1).mean(dim=1) / half
            torch.testing.assert_close(moved_by, torch.full((2,), step, dtype=torch.float64), rtol=0.05, atol=0.0)
