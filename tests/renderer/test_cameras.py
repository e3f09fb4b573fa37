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
