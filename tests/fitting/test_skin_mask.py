"""Skin probability on skimage's astronaut: high on the cheeks, low on hair, eyes, mouth, background."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")

from flamefit.fitting.detect import detect_face  # noqa: E402
from flamefit.fitting.skin_mask import (fit_skin_colour_model, landmark_face_hull_mask,  # noqa: E402
                               rgb_to_lab, skin_probability, skin_seed_mask)


@pytest.fixture(scope="module")
def astronaut_face():
    image = skimage_data.astronaut()
    landmarks = detect_face(image).landmarks
    return image, landmarks, skin_probability(image, landmarks)


def _disc_mean(values: np.ndarray, centre: np.ndarray, radius: float) -> float:
    y, x = np.mgrid[0:values.shape[0], 0:values.shape[1]]
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius ** 2
    return float(values[inside].mean())


def test_output_range_and_shape(astronaut_face):
    image, _, probability = astronaut_face
    assert probability.shape == image.shape[:2] and probability.dtype == np.float32
    assert probability.min() >= 0 and probability.max() <= 1


def test_cheeks_high(astronaut_face):
    _, landmarks, probability = astronaut_face
    for jaw, nose in ((3, 31), (13, 35)):
        cheek = (landmarks[jaw] + landmarks[nose]) / 2
        assert _disc_mean(probability, cheek, 6) > 0.5


def test_eyes_mouth_interior_and_background_low(astronaut_face):
    _, landmarks, probability = astronaut_face
    for centre in (landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[60:68].mean(0)):
        assert _disc_mean(probability, centre, 3) < 0.1
    assert probability[:40].max() == 0 and probability[:, :120].max() == 0  # background
    assert probability[300:].max() == 0  # suit


def test_hair_and_background_colours_rejected_by_the_colour_model(astronaut_face):
    image, landmarks, _ = astronaut_face
    lab = rgb_to_lab(image)
    model = fit_skin_colour_model(lab[skin_seed_mask(landmarks, image.shape[:2])])
    hair = lab[40:60, 160:190].reshape(-1, 3)  # brown hair above her left temple (image left)
    background = lab[20:50, 120:140].reshape(-1, 3)
    assert model.probability(hair).mean() < 0.15  # measured 0.08; skin seeds give 0.7-0.8
    assert model.probability(background).mean() < 0.1


def test_face_hull_mask_covers_landmarks_only():
    landmarks = np.stack([np.linspace(20, 80, 68), 50 + 30 * np.sin(np.linspace(0, 6.2, 68))], 1)
    hull = landmark_face_hull_mask(landmarks, (100, 100))
    assert hull.dtype == np.float32 and hull[50, 50] == 1 and hull[5, 5] == 0
    assert hull[:, :19].max() == 0 and hull[:, 82:].max() == 0


def test_too_few_seed_pixels_is_a_clear_error():
    with pytest.raises(ValueError, match="seed pixels"):
        fit_skin_colour_model(np.zeros((5, 3)))
