"""Coordinate round trips of the fit's outputs: crop pixels, landmarks and cameras mapped back
onto the original photo after it was downscaled (a "huge" photo) and cropped off-centre.

Expectations are computed by hand from the conventions: pixel ``i`` of the photo, the
downscaled photo and the crop is centred on ``i`` (covering ``[i - 0.5, i + 0.5]``); a resize by
``scale`` maps ``p`` to ``(p + 0.5) * scale - 0.5``; the crop square's edge ``x0`` is the crop's
outer edge ``-0.5``, so ``u = zoom * (x - x0) - 0.5``; the renderer's screen puts pixel centres
at ``+0.5``; OpenCV's at integers.
"""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from flamefit.fitting.outputs import crop_to_original_matrix, opencv_camera
from flamefit.fitting.prepare import prepare_image
from flamefit.renderer.cameras import OrthographicCamera, PerspectiveCamera, front_facing_rotation
from tests.fitting.test_prepare import face_landmarks

WIDTH, HEIGHT = 1200, 960  # the original photo
MAX_SIDE = 300  # -> downscaled by SCALE = 0.25 to 300 x 240
SCALE = 0.25
RESOLUTION = 128
# The face in the original photo: x 760..1000, y 520..792, low and right of the centre. In the
# downscaled photo ((p + 0.5) / 4 - 0.5): x 189.625..249.625, y 129.625..197.625; the crop square
# (side 1.25 * (60 + 68) / 2 = 80 around the box's centre) is x 179.625..259.625, y 123.625..
# 203.625, and the zoom 128 / 80 = 1.6.
FACE = (760, 520, 240, 272)
X0, Y0, ZOOM = 179.625, 123.625, 1.6
BLOB = (853.3, 611.7)  # a bright spot in the original photo, inside the crop
BLOB_SIGMA = 16.0


def crop_to_original_by_hand(points):
    """Crop pixel (u, v) -> downscaled photo -> original photo, from the conventions above."""
    points = np.asarray(points, dtype=np.float64)
    downscaled = np.array([X0, Y0]) + (points + 0.5) / ZOOM
    return (downscaled + 0.5) / SCALE - 0.5


@pytest.fixture(scope="module")
def item(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    x, y = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    blob = 255 * np.exp(-((x - BLOB[0]) ** 2 + (y - BLOB[1]) ** 2) / (2 * BLOB_SIGMA**2))
    photo = np.stack([blob, np.zeros_like(blob), np.full_like(blob, 40)], axis=-1)
    iio.imwrite(folder / "huge.png", np.round(photo).astype(np.uint8))
    np.save(folder / "huge.npy", face_landmarks(*FACE))
    return prepare_image(folder / "huge.png", "huge", resolution=RESOLUTION, max_side=MAX_SIDE,
                         landmarks_path=folder / "huge.npy")


def test_the_photo_was_downscaled_and_cropped_as_planned(item):
    assert item.image.scale == SCALE and item.image.rgb.shape == (240, 300, 3)
    assert item.image.original_size == (HEIGHT, WIDTH)
    np.testing.assert_allclose(item.transform.box, [X0, Y0, X0 + 80, Y0 + 80], atol=1e-9)
    assert item.transform.zoom == pytest.approx(ZOOM)


def test_crop_pixels_map_to_the_right_original_pixels(item):
    matrix = crop_to_original_matrix(item)
    corners = np.array([[0.0, 0.0], [RESOLUTION - 1.0, 0.0], [10.0, 100.0], [63.5, 63.5]])
    mapped = corners @ matrix[:2, :2].T + matrix[:2, 2]
    # e.g. crop pixel (0, 0) -> downscaled (179.9375, 123.9375) -> original (721.25, 497.25)
    np.testing.assert_allclose(mapped[0], [721.25, 497.25], atol=1e-9)
    np.testing.assert_allclose(mapped, crop_to_original_by_hand(corners), atol=1e-9)
    # the crop's outer edges (-0.5 and R - 0.5) are the crop square's, in original pixels the
    # edges of pixels: x (179.625 + 0.5) * 4 - 0.5 = 720 ... (259.625 + 0.5) * 4 - 0.5 = 1040
    edges = np.array([[-0.5, -0.5], [RESOLUTION - 0.5, RESOLUTION - 0.5]])
    np.testing.assert_allclose(edges @ matrix[:2, :2].T + matrix[:2, 2], [[720, 496], [1040, 816]], atol=1e-9)
    # the other route the outputs take (crop -> downscaled photo -> original) agrees
    np.testing.assert_allclose(item.image.to_original(item.transform.to_image(corners)), mapped, atol=1e-9)
    assert np.array_equal(matrix[2], [0, 0, 1])


def test_landmarks_round_trip_to_the_original_photo(item):
    matrix = crop_to_original_matrix(item)
    back = item.landmarks_crop @ matrix[:2, :2].T + matrix[:2, 2]
    np.testing.assert_allclose(back, face_landmarks(*FACE), atol=1e-9)
    # a renderer screen point (centres at +0.5) is the crop pixel 0.5 less
    screen = item.landmarks_screen
    np.testing.assert_allclose(item.image.to_original(item.transform.to_image(screen - 0.5)),
                               face_landmarks(*FACE), atol=1e-9)


def test_a_spot_in_the_crop_is_found_at_its_place_in_the_original(item):
    """Pixel content, not only matrices: the bright spot's centroid in the crop (after the 4x
    downscale and the bilinear crop), mapped back, lands on the spot in the original photo."""
    red = item.crop[..., 0].astype(np.float64)
    weight = np.clip(red - 0.02, 0, None)  # drop the faint tail rounded to 0..1 grey levels
    v, u = np.mgrid[:RESOLUTION, :RESOLUTION]
    centroid = np.array([(weight * u).sum(), (weight * v).sum()]) / weight.sum()
    found = crop_to_original_matrix(item)[:2] @ np.r_[centroid, 1.0]
    # half a downscaled pixel would be 2 original pixels, half a crop pixel 1.25
    np.testing.assert_allclose(found, BLOB, atol=0.1)


def model_points(n=50, seed=0):
    """Head-sized points in model space (metres): within 0.1 m of the origin."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, n, 3, generator=g, dtype=torch.float64) - 0.5) * 0.2


def rotation(axis_angle):
    return torch.from_numpy(cv2.Rodrigues(np.asarray(axis_angle, dtype=np.float64))[0])


def project_with_opencv(points, camera):
    rvec = cv2.Rodrigues(camera["R"])[0]
    pixels, _ = cv2.projectPoints(points[0].numpy(), rvec, camera["t"], camera["K"], None)
    return pixels[:, 0]


def test_perspective_camera_projects_onto_the_original_photo_to_005_px(item):
    R = (rotation([0.1, -0.25, 0.05]) @ front_facing_rotation(1, torch.float64)[0])[None]
    camera = PerspectiveCamera(focal=torch.tensor([[900.0, 910.0]], dtype=torch.float64),
                               principal_point=torch.tensor([[61.3, 70.1]], dtype=torch.float64),
                               R=R, t=torch.tensor([[0.01, -0.02, 1.3]], dtype=torch.float64),
                               image_size=(RESOLUTION, RESOLUTION))
    points = model_points()
    screen = camera.project(points)[0, :, :2].numpy()  # crop screen, centres at +0.5
    expected = crop_to_original_by_hand(screen - 0.5)
    exported = opencv_camera(camera, 0, item)
    assert exported["K"].shape == (3, 3) and exported["R"].shape == (3, 3) and exported["t"].shape == (3,)
    np.testing.assert_allclose(project_with_opencv(points, exported), expected, atol=0.05)


def test_perspective_camera_on_axis_point_by_hand(item):
    """The model origin straight ahead of a camera whose principal point is the crop centre
    lands on the crop centre: screen (64, 64), crop pixel (63.5, 63.5), original
    ((179.625 + 64 / 1.6 + 0.5) * 4 - 0.5, (123.625 + 40 + 0.5) * 4 - 0.5) = (880, 656)."""
    camera = PerspectiveCamera.in_front(1, (RESOLUTION, RESOLUTION), distance=1.0, dtype=torch.float64)
    exported = opencv_camera(camera, 0, item)
    pixel = project_with_opencv(torch.zeros(1, 1, 3, dtype=torch.float64), exported)[0]
    np.testing.assert_allclose(pixel, [880.0, 656.0], atol=1e-9)


def test_orthographic_camera_export_is_within_its_documented_bound(item):
    camera = OrthographicCamera(torch.tensor([[8.0, 0.01, -0.02]], dtype=torch.float64),
                                (RESOLUTION, RESOLUTION))
    points = model_points(seed=1)
    screen = camera.project(points)[0, :, :2].numpy()
    expected = crop_to_original_by_hand(screen - 0.5)
    got = project_with_opencv(points, opencv_camera(camera, 0, item))
    # to_opencv's pinhole stands 1000 m away: each coordinate is off by |p - c| * z / (1000 - z)
    # crop pixels (c the crop centre), times 2.5 original pixels per crop pixel
    z = points[0, :, 2:].numpy()
    bound = 2.5 * np.abs(screen - RESOLUTION / 2) * np.abs(z) / (1000 - z) + 1e-7
    assert (np.abs(got - expected) <= bound).all()
    assert np.abs(got - expected).max() < 0.05
