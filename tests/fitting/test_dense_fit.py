"""Fitting on MediaPipe's dense points: renders of the open model, one with a hand over the mouth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.fitting import mediapipe_detect as mp
from flamefit.fitting.dense_embedding import SHIPPED_EMBEDDING, DenseEmbedding
from flamefit.fitting.optimizer import FitConfig, fit_batch
from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import random_parameters
from flamefit.flame import landmark_sets as ibug
from flamefit.flame.pose_layout import GLOBAL
from flamefit.flame.selection import select_model

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not mp.litert_available(), reason="ai-edge-litert is not installed (flamefit[mediapipe])")]

RESOLUTION = 224


@pytest.fixture(scope="module")
def fitted():
    from flamefit.fitting.detect import detect_face

    scene = HeadScene.from_model_files(select_model(open_model=True))
    scene.set_dense_embedding(DenseEmbedding.load(SHIPPED_EMBEDDING))
    generator = torch.Generator().manual_seed(3)
    truth = random_parameters(scene, 2, generator, spread=0.7)
    truth.pose[:, GLOBAL] = torch.tensor([[0.05, 0.35, 0.0], [0.0, -0.2, 0.05]])  # yaw 20, -11 deg
    with torch.no_grad():
        rendered = scene.render(truth, RESOLUTION)
    images = rendered.image + (1 - rendered.alpha) * 0.5
    # a "hand" over item 1's mouth: a flat skin-coloured block over the lips and chin
    lips = rendered.landmarks_px[1, ibug.MOUTH]
    x0, y0 = (lips.min(dim=0).values - 6).long().tolist()
    x1, y1 = (lips.max(dim=0).values + 14).long().tolist()
    images[1, :, y0:y1, x0:x1] = torch.tensor([0.75, 0.55, 0.45])[:, None, None]
    images = images.clamp(0, 1)
    landmarks, dense = [], []
    for image in images:
        rgb = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        found = detect_face(rgb, detector="mediapipe")
        landmarks.append(found.landmarks + 0.5)  # pixel indices -> screen
        dense.append(found.dense + 0.5)
    landmarks = torch.tensor(np.stack(landmarks), dtype=torch.float32)
    dense = torch.tensor(np.stack(dense), dtype=torch.float32)
    skin = torch.ones(2, 1, RESOLUTION, RESOLUTION)
    outcome = fit_batch(scene, images, landmarks, skin, FitConfig(rigid_steps=100, full_steps=300),
                        dense_px=dense)
    return scene, truth, rendered, outcome, dense


def test_fitted_landmarks_match_the_truth(fitted):
    _, _, rendered, outcome, _ = fitted
    assert outcome.status == ["done", "done"]
    iod = (rendered.landmarks_px[:, 36] - rendered.landmarks_px[:, 45]).norm(dim=-1)
    error = (outcome.landmarks - rendered.landmarks_px).norm(dim=-1)  # (2, 68) px
    inner = error[:, ibug.INNER].mean(dim=1) / iod
    assert inner[0] < 0.05, inner  # the clean render
    assert outcome.dense is not None and outcome.dense.shape[1] == len(DenseEmbedding.load(SHIPPED_EMBEDDING).point_ids)


def test_a_hand_over_the_mouth_does_not_drag_the_lips(fitted):
    _, _, rendered, outcome, _ = fitted
    iod = (rendered.landmarks_px[1, 36] - rendered.landmarks_px[1, 45]).norm()
    lips_error = (outcome.landmarks[1, ibug.MOUTH] - rendered.landmarks_px[1, ibug.MOUTH]).norm(dim=-1)
    assert lips_error.mean() / iod < 0.08, lips_error.mean() / iod
    eyes_error = (outcome.landmarks[1, ibug.EYES] - rendered.landmarks_px[1, ibug.EYES]).norm(dim=-1)
    assert eyes_error.mean() / iod < 0.05


def test_irises_turn_the_eyes_only_as_much_as_the_photo_says(fitted):
    _, truth, _, outcome, _ = fitted
    from flamefit.flame.pose_layout import EYES

    # the renders look straight ahead: the fitted eye rotation stays small (under ~6 degrees)
    assert outcome.params.pose[:, EYES].abs().max().item() < 0.1
