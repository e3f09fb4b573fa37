"""The landmark regressor: rotations, the synthetic data's frames, a tiny training, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flamefit.fitting import landmark_regressor as lr


@pytest.fixture(scope="module")
def flame(demo_head_dir):
    from flamefit.flame.flame_layer import FLAME

    return FLAME.from_files(demo_head_dir / "generic_model.pkl", demo_head_dir / "landmark_embedding.npy")


def test_rotation_round_trips():
    generator = torch.Generator().manual_seed(0)
    rotation = lr._euler_rotation(torch.rand(50, generator=generator) * 3 - 1.5,
                                  torch.rand(50, generator=generator) - 0.5,
                                  torch.rand(50, generator=generator) - 0.5)
    from flamefit.flame.lbs import batch_rodrigues

    back = batch_rodrigues(lr.axis_angle_from_rotation(rotation))
    assert torch.allclose(back, rotation, atol=1e-5)
    six = torch.cat([rotation[:, :, 0], rotation[:, :, 1]], dim=1)
    assert torch.allclose(lr.rotation_from_6d(six), rotation, atol=1e-6)
    # a yaw of 90 degrees is axis-angle (0, pi/2, 0)
    quarter = lr._euler_rotation(torch.tensor([math.pi / 2]), torch.zeros(1), torch.zeros(1))
    assert torch.allclose(lr.axis_angle_from_rotation(quarter), torch.tensor([[0, math.pi / 2, 0]]), atol=1e-5)


def test_training_batch_truth_reprojects_onto_the_clean_landmarks(flame):
    data = lr.training_batch(flame, 16, torch.Generator().manual_seed(1))
    truth = {"rotation": data.rotation, "jaw": data.pose[:, 6:9], "expression": data.expression,
             "shape": data.shape, "camera": data.camera}
    projected = lr.project(flame, truth)
    assert torch.allclose(projected, data.clean, atol=1e-4)
    # inputs are inside the crop, with gaps where points are missing
    present = torch.isfinite(data.landmarks).all(dim=-1)
    assert present.float().mean() > 0.7
    assert data.landmarks[present].abs().max() <= 1.0 / lr.CROP_SCALE + 1e-5


def test_tiny_training_lowers_the_loss_and_round_trips(flame, tmp_path):
    spec = lr.spec_for(flame, "abc")
    regressor, log = lr.train(flame, spec, minutes=5, batch=64, max_steps=60)
    assert len(log.loss) == 6 and log.loss[-1] < log.loss[0]
    path = lr.save_regressor(tmp_path / "r.pt", regressor, log)
    loaded = lr.load_regressor(path)
    assert loaded is not None and loaded.spec == spec
    points = lr.training_batch(flame, 4, torch.Generator().manual_seed(2)).landmarks
    with torch.no_grad():
        for key, value in regressor(points).items():
            assert torch.allclose(loaded(points)[key], value)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert lr.load_regressor(tmp_path / "bad.pt") is None


def test_initial_values_undo_the_crop(flame):
    """The camera it returns, in the fit's crop, projects the regressor's own landmarks there."""
    spec = lr.spec_for(flame, "")
    regressor = lr.LandmarkRegressor(spec).eval()
    data = lr.training_batch(flame, 3, torch.Generator().manual_seed(3))
    resolution = 224
    half = resolution / 2
    fit_crop_px = (data.clean * 0.6 + 0.1) * half + half - 0.5  # somewhere in a 224 crop
    values = lr.initial_values(regressor, fit_crop_px.numpy(), resolution)
    normalised, _, _ = lr.crop_normalise((fit_crop_px + 0.5 - half) / half)
    with torch.no_grad():
        raw = regressor(normalised)
        in_box = lr.project(flame, raw)  # landmark-crop coordinates
        full = {**raw, "camera": torch.tensor(np.stack([v["camera"] for v in values]))}
        in_fit = lr.project(flame, full)  # fit-crop coordinates
    _, centre, box_half = lr.crop_normalise((fit_crop_px + 0.5 - half) / half)
    assert torch.allclose(in_fit, centre[:, None] + box_half[:, None, None] * in_box, atol=1e-4)


def test_landmark_layer_equals_the_full_layer(flame):
    data = lr.training_batch(flame, 6, torch.Generator().manual_seed(4))
    layer = lr.LandmarkLayer(flame)
    full = flame(shape=data.shape, expression=data.expression, pose=data.pose).landmarks
    fast = layer(shape=data.shape, expression=data.expression, pose=data.pose).landmarks
    assert torch.allclose(fast, full, atol=1e-6)
    assert layer.v_template.shape[0] < flame.v_template.shape[0] / 2


def test_detector_residuals_shift_the_training_points():
    residuals = lr.DetectorResiduals("test", np.array([[60.0, 10.0, 5.0], [-60.0, 10.0, -5.0]], np.float32),
                                     np.zeros((2, 68, 2), np.float32))
    residuals.residuals[0, 36] = (0.1, 0.02)  # the subject's right eye corner
    residuals.residuals[1, 45] = (-0.1, 0.02)
    # a face gets the residual of the nearest calibration pose, scaled by its box
    image = torch.rand(2, 68, 2) * 4
    degrees = torch.tensor([[50.0, 0.0, 0.0], [-70.0, 5.0, 0.0]])
    shifted = lr._detector_like(image, degrees, residuals, torch.Generator().manual_seed(0), neighbours=1)
    half = (image.amax(dim=1) - image.amin(dim=1)).amax(dim=1) / 2 * lr.CROP_SCALE
    assert torch.allclose(shifted[0, 36] - image[0, 36], torch.tensor([0.1, 0.02]) * half[0])
    assert torch.allclose(shifted[1, 45] - image[1, 45], torch.tensor([-0.1, 0.02]) * half[1])
    assert torch.allclose(shifted[:, :36], image[:, :36])


def test_training_with_residuals_records_the_detector(flame):
    residuals = lr.DetectorResiduals("mediapipe", np.zeros((3, 3), np.float32),
                                     np.full((3, 68, 2), 0.01, np.float32))
    regressor, _ = lr.train(flame, lr.spec_for(flame, "abc"), minutes=5, batch=32, max_steps=3,
                            residuals=residuals)
    assert regressor.spec.detector == "mediapipe"


def test_calibrating_a_detector_on_renders(demo_head_dir):
    from flamefit.fitting.mediapipe_detect import litert_available
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    if not litert_available():
        pytest.skip("the MediaPipe detector (ai-edge-litert) is not installed")
    scene = HeadScene.from_model_files(select_model(demo_head_dir), backend="torch")
    calls = []
    found = lr.calibrate_detector(scene, count=6, size=256, progress=lambda d, n: calls.append(d))
    assert calls == list(range(1, 7))
    assert found.detector == "mediapipe" and 0 < len(found.angles) <= 6
    assert found.residuals.shape == (len(found.angles), 68, 2)
    # near profile a detector can be off by a whole box half; nothing wilder than that
    assert np.isfinite(found.residuals).all() and np.abs(found.residuals).max() < 3.0
