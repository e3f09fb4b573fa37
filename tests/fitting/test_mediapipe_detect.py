"""MediaPipe's 478 points, offline, on skimage's astronaut; the regions; the missing-package line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from flamefit.fitting import detect  # noqa: E402
from flamefit.fitting import mediapipe_detect as mp  # noqa: E402
from flamefit.fitting.errors import DetectorUnavailableError  # noqa: E402

needs_litert = pytest.mark.skipif(not mp.litert_available(),
                                  reason="ai-edge-litert is not installed (flamefit[mediapipe])")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def dlib_face(astronaut):
    return detect.detect_face(astronaut, detector="dlib")


@needs_litert
def test_astronaut_478_points(astronaut, dlib_face):
    found = detect.detect_face(astronaut, detector="mediapipe")
    assert found.detector == "mediapipe" and found.n_faces == 1
    assert found.dense.shape == (478, 2) and found.landmarks.shape == (68, 2)
    assert 0.5 < found.score <= 1.0
    iod = np.linalg.norm(dlib_face.landmarks[36] - dlib_face.landmarks[45])  # ~60 px
    # the irises sit between dlib's eye corners, the right one (subject's) on the image's left
    right = dlib_face.landmarks[36:42].mean(0)
    left = dlib_face.landmarks[42:48].mean(0)
    assert np.linalg.norm(found.dense[mp.RIGHT_IRIS][0] - right) < 0.08 * iod
    assert np.linalg.norm(found.dense[mp.LEFT_IRIS][0] - left) < 0.08 * iod
    # the five points of each iris: a centre and four around it, about an iris wide
    radius = np.linalg.norm(found.dense[469:473] - found.dense[468], axis=1)
    assert np.all((radius > 0.05 * iod) & (radius < 0.2 * iod))
    # mesh eye corners against dlib's, and the 68 points converted from the 478
    assert np.linalg.norm(found.dense[[33, 263]] - dlib_face.landmarks[[36, 45]], axis=1).max() < 0.06 * iod
    inner = np.linalg.norm(found.landmarks[17:] - dlib_face.landmarks[17:], axis=1)
    assert np.median(inner) < 0.05 * iod


@needs_litert
def test_points_follow_the_photo_when_it_is_shifted_and_scaled(astronaut):
    found = detect.detect_face(astronaut, detector="mediapipe")
    import cv2

    bigger = cv2.resize(astronaut, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    canvas = np.full((900, 900, 3), 90, np.uint8)
    canvas[100:100 + bigger.shape[0], 50:50 + bigger.shape[1]] = bigger[:800, :850]
    moved = detect.detect_face(canvas, detector="mediapipe")
    # pixel-index frames: x' = 1.5 (x + 0.5) - 0.5 + 50
    expected = 1.5 * (found.dense + 0.5) - 0.5 + np.array([50, 100])
    error = np.linalg.norm(moved.dense - expected, axis=1)
    assert np.median(error) < 1.5  # px of the 1.5x photo; the face is ~130 px wide


def test_rotated_square_resamples_and_maps_back():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40, 70] = 255  # one bright pixel at x 70, y 40
    region = mp.RotatedSquare(np.array([60.5, 50.5]), 50.0, np.deg2rad(30))
    crop = region.resample(image, 64)
    row, col = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    back = region.to_photo_index(np.array([[col + 0.5, row + 0.5]]), 64)[0]
    assert np.linalg.norm(back - [70, 40]) < 0.8
    mirrored = region.resample(image, 64, mirror=True)
    row_m, col_m = np.unravel_index(np.argmax(mirrored[..., 0]), mirrored.shape[:2])
    assert row_m == row and col_m == 63 - col
    back_m = region.to_photo_index(np.array([[col_m + 0.5, row_m + 0.5]]), 64, mirror=True)[0]
    assert np.allclose(back_m, back)


def test_anchor_counts_match_the_networks():
    assert len(mp._anchor_centres(mp._SHORT_RANGE)) == 896
    assert len(mp._anchor_centres(mp._FULL_RANGE)) == 2304


def test_region_around_points_is_level_with_them():
    points = np.array([[10.0, 10.0], [30.0, 30.0], [20.0, 40.0]])
    region = mp.RotatedSquare.around(points, 0, 1, scale=1.0)
    assert np.isclose(region.angle, np.pi / 4)
    # the square's side is the larger extent along its own axes
    along = np.linalg.norm(points[1] - points[0])
    assert region.side >= along - 1e-9


def test_contour_snaps_to_the_mesh_outline():
    angles = np.linspace(0, 2 * np.pi, 468, endpoint=False)
    dense = np.stack([100 + 50 * np.cos(angles), 100 + 50 * np.sin(angles)], axis=1)
    dense = np.vstack([dense, np.full((10, 2), 100.0)])
    landmarks = np.full((68, 2), 100.0)
    landmarks[:17] = 100 + 40 * np.stack([np.cos(angles[:17] * 10), np.sin(angles[:17] * 10)], axis=1)
    snapped = mp.snap_contour_to_outline(landmarks, dense)
    radius = np.linalg.norm(snapped[:17] - 100, axis=1)
    assert np.all(radius > 49.5) and np.all(radius <= 50.01)
    assert np.array_equal(snapped[17:], landmarks[17:])


def test_missing_interpreter_gives_one_clear_line(monkeypatch, astronaut):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    mp._network.cache_clear()
    try:
        with pytest.raises(DetectorUnavailableError) as caught:
            detect.detect_face(astronaut, detector="mediapipe")
    finally:
        mp._network.cache_clear()
    message = str(caught.value)
    assert "pip install 'flamefit[mediapipe]'" in message and "--detector dlib" in message
    assert "\n" not in message


def test_auto_picks_mediapipe_only_when_installed(monkeypatch):
    monkeypatch.setattr(mp, "litert_available", lambda: True)
    assert detect.resolve_detector("auto") == "mediapipe"
    monkeypatch.setattr(mp, "litert_available", lambda: False)
    assert detect.resolve_detector("auto") == "dlib"
    assert detect.resolve_detector("fan") == "fan"


@needs_litert
def test_threads_share_the_networks_safely(astronaut):
    from concurrent.futures import ThreadPoolExecutor

    expected = detect.detect_face(astronaut, detector="mediapipe").dense
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: detect.detect_face(astronaut, detector="mediapipe").dense, range(8)))
    for dense in found:
        np.testing.assert_allclose(dense, expected, atol=1e-6)
