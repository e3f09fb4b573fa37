"""Face detection and landmarks on skimage's astronaut; failure paths."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")

from flamefit.fitting import detect  # noqa: E402
from flamefit.fitting.errors import DetectorUnavailableError, FaceTooSmallError, NoFaceError  # noqa: E402


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def astronaut_detection(astronaut):
    return detect.detect_face(astronaut, detector="dlib")


def _detectors() -> list:
    """dlib always; mediapipe when its interpreter is installed."""
    from flamefit.fitting.mediapipe_detect import litert_available

    return ["dlib", pytest.param("mediapipe", marks=pytest.mark.skipif(
        not litert_available(), reason="ai-edge-litert is not installed (flamefit[mediapipe])"))]


def _check_face_layout(landmarks: np.ndarray, box: np.ndarray) -> None:
    """Eyes above the nose tip above the mouth above the chin, inside the box, plausible size."""
    eye_right_of_subject, eye_left_of_subject = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    nose_tip, mouth, chin = landmarks[30], landmarks[48:68].mean(0), landmarks[8]
    assert max(eye_right_of_subject[1], eye_left_of_subject[1]) < nose_tip[1] < mouth[1] < chin[1]
    assert eye_right_of_subject[0] < nose_tip[0] < eye_left_of_subject[0]
    width = box[2] - box[0]
    margin = 0.15 * width
    assert np.all(landmarks[:, 0] > box[0] - margin) and np.all(landmarks[:, 0] < box[2] + margin)
    assert np.all(landmarks[:, 1] > box[1] - margin) and np.all(landmarks[:, 1] < box[3] + margin)
    inter_ocular = np.linalg.norm(eye_left_of_subject - eye_right_of_subject)
    assert 0.3 * width < inter_ocular < 0.6 * width


def test_astronaut_face_and_landmarks(astronaut_detection):
    found = astronaut_detection
    assert found.detector == "dlib-hog" and found.landmarks.shape == (68, 2)
    assert found.n_faces == 1  # the badge on her suit scores far below the face and is dropped
    # The face sits around x 180..265, y 85..170 in the 512x512 image.
    assert np.allclose(found.box, [179, 83, 267, 171], atol=12)
    _check_face_layout(found.landmarks, found.box)
    assert 35 < np.linalg.norm(found.landmarks[36:42].mean(0) - found.landmarks[42:48].mean(0)) < 55


def test_cnn_fallback_with_box_correction(astronaut, astronaut_detection):
    boxes, confidences = detect.cnn_boxes(astronaut[:300, 60:360])
    assert len(boxes) == 1 and confidences[0] > 0.5
    raw = boxes[0] + [60, 0, 60, 0]
    corrected = detect.correct_cnn_box(raw)
    # The correction moves the box down and enlarges it.
    assert (corrected[1] + corrected[3]) > (raw[1] + raw[3])
    assert corrected[2] - corrected[0] > raw[2] - raw[0]
    landmarks = detect.dlib_landmarks(astronaut, corrected)
    _check_face_layout(landmarks, corrected)
    inter_ocular = np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0))
    error = np.linalg.norm(landmarks - astronaut_detection.landmarks, axis=1).mean()
    assert error < 0.1 * inter_ocular


@pytest.mark.parametrize("detector", _detectors())
def test_blank_and_noise_images_have_no_face(monkeypatch, detector):
    # Keep the test fast: make the CNN fallback run on a small copy.
    monkeypatch.setattr(detect, "CNN_WORK_SIDE", 160)
    with pytest.raises(NoFaceError, match="no face found"):
        detect.detect_face(np.full((160, 160, 3), 128, np.uint8), detector=detector)
    noise = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        detect.detect_face(noise, detector=detector)


@pytest.mark.parametrize("detector", _detectors())
def test_face_too_small(astronaut, detector):
    with pytest.raises(FaceTooSmallError, match="px across"):
        detect.detect_face(astronaut, min_face_size=200, detector=detector)


@pytest.mark.parametrize("detector", _detectors())
def test_face_index_beyond_faces(astronaut, detector):
    with pytest.raises(NoFaceError, match="only 1 face found"):
        detect.detect_face(astronaut, face_index=1, detector=detector)


@pytest.mark.parametrize("detector", _detectors())
def test_two_faces_fits_the_largest(detector):
    from flamefit.fitting.detect import _resize

    face = skimage_data.astronaut()[40:220, 130:310]  # one face, about 90 px wide
    canvas = np.full((290, 500, 3), 200, np.uint8)
    canvas[10:280, 10:280] = _resize(face, 1.5)  # about 135 px wide
    canvas[50:230, 310:490] = face[:, ::-1]
    found = detect.detect_face(canvas, detector=detector)
    assert found.n_faces == 2 and "2 faces found, fitting the largest" in found.notes
    assert found.box[2] < 290
    second = detect.detect_face(canvas, face_index=1, detector=detector)
    assert second.box[0] > 300
    _check_face_layout(second.landmarks, second.box)


def test_fan_without_cached_weights_gives_one_clear_message(tmp_path, monkeypatch, astronaut):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(DetectorUnavailableError) as caught:
        detect.detect_face(astronaut, detector="fan")
    message = str(caught.value)
    assert "face-alignment weights not found in the torch hub cache" in message
    assert "cannot be downloaded offline: use --detector dlib" in message
    assert "\n" not in message


def test_dlib_model_files_found_without_importing_the_package():
    import sys

    path = detect.dlib_model_path("shape_predictor_68_face_landmarks.dat")
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert "face_recognition_models" not in sys.modules
