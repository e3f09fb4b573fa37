"""Steep profiles: the image regressor's landmarks and start where MediaPipe's mesh gives up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flamefit.fitting import mediapipe_detect as mp
from flamefit.fitting.detect import Detection
from flamefit.fitting.profile_landmarks import image_regressor_for, regress_landmarks, steep_view_refiner

needs_litert = pytest.mark.skipif(not mp.litert_available(),
                                  reason="ai-edge-litert is not installed (pip install 'flamefit[mediapipe]')")


@pytest.fixture(scope="module")
def scene():
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    return HeadScene.from_model_files(select_model(open_model=True))


def box_nme(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error in % of the truth's box size (sqrt of width x height)."""
    extent = truth.max(axis=0) - truth.min(axis=0)
    return 100 * float(np.linalg.norm(points - truth, axis=1).mean() / np.sqrt(extent.prod()))


def render_at_yaw(scene, yaw_deg: float, seed: int = 3, size: int = 384):
    """A render of the open model turned ``yaw_deg`` on grey, and its true 68 points (pixel
    indices)."""
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.pose_layout import GLOBAL

    truth = random_parameters(scene, 1, torch.Generator().manual_seed(seed), spread=0.5)
    truth.pose[:, GLOBAL.start + 1] = float(np.deg2rad(yaw_deg))
    truth.camera[:, 0] = truth.camera[:, 0] * 0.55
    with torch.no_grad():
        rendered = scene.render(truth, size)
    image = rendered.image + (1 - rendered.alpha) * 0.5
    rgb = (image[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return rgb, rendered.landmarks_px[0].double().numpy() - 0.5


@pytest.fixture(scope="module")
def profile(scene):
    return render_at_yaw(scene, 88.0)


def test_the_open_model_has_an_image_regressor_and_other_models_none(scene, demo_head_dir):
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    assert image_regressor_for(scene) is not None
    assert image_regressor_for(scene) is image_regressor_for(scene)  # loaded once
    other = HeadScene.from_model_files(select_model(demo_head_dir))
    assert image_regressor_for(other) is None and steep_view_refiner(other) is None


def test_passes_pull_rough_points_onto_the_profile(scene, profile, one_thread):
    rgb, truth = profile
    centre = truth.mean(axis=0)
    rough = centre + (truth - centre) * 1.3 + np.array([12.0, -8.0])  # a mesh-like miss
    assert box_nme(rough, truth) > 15
    one = regress_landmarks(image_regressor_for(scene), scene, rgb, rough, passes=1)
    three = regress_landmarks(image_regressor_for(scene), scene, rgb, rough, passes=3)
    assert box_nme(three.landmarks, truth) < 8
    assert box_nme(three.landmarks, truth) < box_nme(one.landmarks, truth)
    assert len(three.moved) == 3 and three.moved[-1] < three.moved[0]
    yaw = three.start["pose"][1]  # global rotation about y, radians
    assert abs(np.rad2deg(yaw) - 88.0) < 20


def test_the_start_is_sized_for_the_scene_and_drops_a_perspective_camera(scene, profile):
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    rgb, truth = profile
    start = regress_landmarks(image_regressor_for(scene), scene, rgb, truth, passes=1).start
    assert start["shape"].shape == (scene.flame.n_shape,)
    assert start["texture"].shape == (scene.albedo.n_components,)
    assert start["camera"].shape == (3,) and scene.camera_type == "orthographic"
    small = HeadScene.from_model_files(select_model(open_model=True), n_shape=20, camera="perspective")
    start = regress_landmarks(image_regressor_for(small), small, rgb, truth, passes=1).start
    assert start["shape"].shape == (20,) and "camera" not in start


def test_steep_view_is_the_mesh_doubting_the_face():
    def detection(presence):
        return Detection(box=np.zeros(4), landmarks=np.zeros((68, 2)), score=0.9, detector="mediapipe",
                         n_faces=1, mesh_presence=presence)

    assert detection(0.3).steep_view and detection(0.0).steep_view
    assert not detection(0.9).steep_view and not detection(None).steep_view


@needs_litert
def test_a_full_profile_is_prepared_from_the_regressor(scene, profile, tmp_path):
    from flamefit.fitting.errors import NoFaceError
    from flamefit.fitting.prepare import prepare_image
    from flamefit.utils import write_image

    rgb, truth = profile
    write_image(tmp_path / "profile.png", rgb)
    try:  # the mesh alone: dropped (presence under 0.005) or kept with its own, worse points
        mesh = prepare_image(tmp_path / "profile.png", "p", detector="mediapipe")
    except NoFaceError:
        mesh = None
    item = prepare_image(tmp_path / "profile.png", "p", detector="mediapipe",
                         steep_view=steep_view_refiner(scene))
    assert item.source == "mediapipe + image regressor" and item.dense is None
    assert item.init is not None and any("steep view" in note for note in item.notes)
    assert box_nme(item.landmarks, truth) < 8
    if mesh is not None:
        assert mesh.source == "mediapipe" and mesh.init is None and mesh.dense is not None
        assert box_nme(mesh.landmarks, truth) > box_nme(item.landmarks, truth)


@needs_litert
def test_fit_starts_a_profile_from_the_regressor_unless_zero_is_asked(scene, profile, tmp_path, one_thread):
    from flamefit.fitting.batch import fit_images
    from flamefit.fitting.options import FitOptions
    from flamefit.utils import write_image

    rgb, _ = profile
    write_image(tmp_path / "in" / "profile.png", rgb)
    for init in ("auto", "zero"):
        summary = fit_images([tmp_path / "in"], tmp_path / init, FitOptions(
            device="cpu", open_model=True, detector="mediapipe", init=init, rigid_steps=1, full_steps=1,
            resolution=64, outputs="params"), show_progress=False)
        assert summary.fitted == ["profile"], summary.failed
        report = json.loads((tmp_path / init / "profile" / "report.json").read_text())
        assert report["landmarks_source"] == "mediapipe + image regressor"
        started = any("started from the image regressor" in note for note in report["notes"])
        assert started == (init == "auto")


def test_an_image_regressor_given_for_another_model_is_one_clear_usage_error(demo_head_dir, scene):
    from flamefit.fitting.batch import start_session
    from flamefit.fitting.options import SHIPPED_IMAGE_REGRESSOR_DIR, FitOptions
    from flamefit.utils import UsageError

    assert image_regressor_for(scene, SHIPPED_IMAGE_REGRESSOR_DIR) is not None  # the right model: used
    with pytest.raises(UsageError, match="--image-regressor: .*another head model"):
        start_session(FitOptions(device="cpu", flame_dir=demo_head_dir,
                                 image_regressor=SHIPPED_IMAGE_REGRESSOR_DIR), "cpu")
    with pytest.raises(UsageError, match="--image-regressor: .*no trained image regressor"):
        start_session(FitOptions(device="cpu", open_model=True, image_regressor=demo_head_dir), "cpu")
