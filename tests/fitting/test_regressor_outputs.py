"""Other regressors' outputs read unchanged: every format from a file written in its tool's exact
layout, the values landing in the right parameters, cameras carried through the tool's crop into
ours, the model-in-use policy, one-line errors, and the shape prior."""

from __future__ import annotations

import os
import pickle
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from skimage.transform import estimate_transform

from flamefit.fitting.crop import crop_box, crop_transform
from flamefit.fitting.regressor_outputs import (
    axis_angle_to_matrix,
    initial_values,
    load_shape_prior,
    matrix_to_axis_angle,
    read_regressor_output,
    rotation_6d_to_matrix,
)
from tests.fitting import regressor_files as rf


# -- rotations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", [[0.3, -0.2, 0.5], [1e-9, 0.0, 0.0], [0.0, 0.0, 0.0],
                                    [3.14159, 0.0, 0.0], [0.0, 3.1415, 0.0],
                                    [1.2, -2.0, 0.9]])
def test_6d_rotation_to_axis_angle_matches_a_known_rotation(vector):
    known = np.asarray(vector, dtype=np.float64)
    matrix = cv2.Rodrigues(known)[0]
    d6 = matrix[:2].reshape(6)  # PyTorch3D's matrix_to_rotation_6d
    np.testing.assert_allclose(rotation_6d_to_matrix(d6), matrix, atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle(rotation_6d_to_matrix(d6)), known, atol=1e-6)
    np.testing.assert_allclose(axis_angle_to_matrix(known), matrix, atol=1e-12)


def test_6d_rotation_is_orthonormalised_like_pytorch3d():
    d6 = np.array([2.0, 0.1, 0.0, 0.3, 1.5, 0.2])  # unnormalised, not orthogonal rows
    m = rotation_6d_to_matrix(d6)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(m[0], d6[:3] / np.linalg.norm(d6[:3]), atol=1e-12)
    assert np.linalg.det(m) == pytest.approx(1.0)


# -- a photo, its crop, a scene ------------------------------------------------------------------
def fake_item(scale: float = 1.0, resolution: int = 224, with_dense: bool = False):
    """A prepared photo: a 600 x 512 photo (maybe shown downscaled), a face's 68 landmarks."""
    rng = np.random.default_rng(0)
    original = np.concatenate([rng.uniform([230, 170], [350, 310], size=(66, 2)),
                               [[230, 170], [350, 310]]])
    landmarks = original * scale
    dense = None
    if with_dense:
        dense = np.concatenate([rng.uniform([225, 150], [355, 312], size=(476, 2)),
                                [[225, 150], [355, 312]]]) * scale
    image = SimpleNamespace(original_size=(512, 600), scale=scale)
    return SimpleNamespace(image=image, landmarks=landmarks, dense=dense,
                           transform=crop_transform(crop_box(landmarks), resolution))


@pytest.fixture(scope="module")
def scene(demo_head_dir):
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import files_in

    files = files_in(demo_head_dir)
    built = HeadScene.from_model_files(files)
    built.model_kind = files.kind
    assert built.model_kind == "test"
    return built


def our_image_points(camera: np.ndarray, points: np.ndarray, item, resolution: int) -> np.ndarray:
    """Photo pixels (``item.image`` scale) of model points under our orthographic camera."""
    from flamefit.renderer.camera_models import camera_model

    model = camera_model("orthographic")
    screen = model.camera(torch.tensor(camera, dtype=torch.float64)[None], resolution).project(
        torch.tensor(points, dtype=torch.float64)[None])[0, :, :2].numpy()
    return item.transform.to_image(screen - 0.5)


def tool_image_points(camera, points, tform) -> np.ndarray:
    """DECA's projection: ``batch_orth_proj``, y flipped, ``* 112 + 112`` in its 224 crop, then
    back through the dataset's ``tform`` (original photo pixels)."""
    s, tx, ty = camera
    normalised = np.stack([s * (points[:, 0] + tx), -s * (points[:, 1] + ty)], axis=1)
    crop = normalised * 112 + 112
    back = np.linalg.inv(tform) @ np.concatenate([crop, np.ones((len(crop), 1))], axis=1).T
    return back[:2].T


def deca_tform(landmarks, scale=1.25, kpt_factor=1.1):
    """DECA's ``datasets.py`` crop (``bbox2point`` 'kpt68', ``estimate_transform``)."""
    left, right = landmarks[:, 0].min(), landmarks[:, 0].max()
    top, bottom = landmarks[:, 1].min(), landmarks[:, 1].max()
    old_size = (right - left + bottom - top) / 2 * kpt_factor
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    size = int(old_size * scale)
    src = np.array([[center[0] - size / 2, center[1] - size / 2], [center[0] - size / 2, center[1] + size / 2],
                    [center[0] + size / 2, center[1] - size / 2]])
    dst = np.array([[0, 0], [0, 223], [223, 0]])
    return estimate_transform("similarity", src, dst).params


POINTS = np.array([[0.0, 0.0, 0.0], [0.05, 0.03, 0.02], [-0.04, -0.06, 0.05], [0.07, -0.02, -0.01]])


# -- every format --------------------------------------------------------------------------------
@pytest.mark.parametrize("container", ["npy", "pkl", "pt"])
def test_deca_codedict(tmp_path, scene, container):
    path, truth = rf.deca_codedict(tmp_path, container)
    out = read_regressor_output(path)
    assert out.format == "DECA codedict" and out.crop.rule == "deca"
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-6)
    np.testing.assert_allclose(out.shape, truth["shape"], atol=1e-6)
    np.testing.assert_allclose(out.expression, truth["expression"], atol=1e-6)
    np.testing.assert_allclose(out.light, truth["light"], atol=1e-6)
    item = fake_item()
    values, notes = initial_values(out, item, scene, 224)
    np.testing.assert_allclose(values["shape"], truth["shape"], atol=1e-6)  # test head: 100 shape
    np.testing.assert_allclose(values["expression"], truth["expression"], atol=1e-6)
    assert "DECA codedict" in notes[0] and "DECA's rule" in notes[0]
    # the camera lands where DECA's own crop of this photo (its dataset code) puts the points
    tform = deca_tform(item.landmarks)
    np.testing.assert_allclose(our_image_points(values["camera"], POINTS, item, 224),
                               tool_image_points(truth["camera"], POINTS, tform), atol=1e-3)


@pytest.mark.parametrize("scale, resolution", [(1.0, 224), (0.5, 128)])
def test_deca_tform_is_used_and_photo_downscaling_is_followed(tmp_path, scene, scale, resolution):
    item = fake_item(scale, resolution)
    # a crop of DECA's that differs from the rule: the file's own (original photo pixels) wins
    tform = deca_tform(item.landmarks / scale, scale=1.6)
    path, truth = rf.deca_codedict(tmp_path, "npy", tform=tform)
    out = read_regressor_output(path)
    assert out.crop.rule == "tform"
    values, notes = initial_values(out, item, scene, resolution)
    assert "its tform" in notes[0]
    np.testing.assert_allclose(our_image_points(values["camera"], POINTS, item, resolution) / scale,
                               tool_image_points(truth["camera"], POINTS, tform), atol=1e-3)


def test_emoca_folders(tmp_path, scene):
    folder, truth = rf.emoca_folder(tmp_path / "emoca")
    out = read_regressor_output(folder)
    assert out.format == "EMOCA folder" and out.camera is None
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-6)
    np.testing.assert_allclose(out.texture, truth["texture"], atol=1e-6)
    values, notes = initial_values(out, fake_item(), scene, 224)
    assert "camera" not in values and "estimated from the landmarks" in notes[0]

    folder, truth = rf.emoca_folder(tmp_path / "inferno", inferno=True)
    out = read_regressor_output(folder)
    np.testing.assert_allclose(out.camera, truth["camera"], atol=1e-6)
    np.testing.assert_allclose(out.light, truth["light"], atol=1e-6)
    item = fake_item()
    values, _ = initial_values(out, item, scene, 224)
    np.testing.assert_allclose(our_image_points(values["camera"], POINTS, item, 224),
                               tool_image_points(truth["camera"], POINTS, deca_tform(item.landmarks)), atol=1e-3)


def test_emica_folder_is_truncated_to_the_model(tmp_path, scene):
    folder, truth = rf.emica_folder(tmp_path / "emica")
    out = read_regressor_output(folder)
    assert out.format == "EMICA folder" and out.shape.size == 300 and out.expression.size == 100
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-6)
    values, notes = initial_values(out, fake_item(), scene, 224)
    n_shape, n_expression = scene.flame.n_shape, scene.flame.n_expression
    np.testing.assert_allclose(values["shape"], truth["shape"][:n_shape], atol=1e-6)
    np.testing.assert_allclose(values["expression"], truth["expression"][:n_expression], atol=1e-6)
    assert f"shape 300 -> {n_shape}" in notes[0] and f"expression 100 -> {n_expression}" in notes[0]
    np.testing.assert_allclose(values["light"], truth["light"], atol=1e-6)


@pytest.mark.parametrize("with_dense", [True, False])
def test_smirk_outputs_and_its_crop(tmp_path, scene, with_dense):
    path, truth = rf.smirk_outputs(tmp_path)
    out = read_regressor_output(path)
    assert out.format == "SMIRK dict" and out.crop.rule == "smirk"
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-6)
    item = fake_item(with_dense=with_dense)
    values, notes = initial_values(out, item, scene, 224)
    assert "eyelid_params left out" in notes[0]
    assert ("MediaPipe points" in notes[0]) and (("no MediaPipe points" in notes[0]) != with_dense)
    box_points = item.dense if with_dense else item.landmarks
    tform = deca_tform(box_points, scale=1.4, kpt_factor=1.0)  # SMIRK's demo.py crop_face
    np.testing.assert_allclose(our_image_points(values["camera"], POINTS, item, 224),
                               tool_image_points(truth["camera"], POINTS, tform), atol=1e-3)


def test_mica_identity(tmp_path, scene):
    folder, truth = rf.mica_folder(tmp_path / "mica")
    for given in (folder, folder / "identity.npy"):
        out = read_regressor_output(given)
        assert out.format == "MICA identity" and out.pose is None and out.camera is None
        np.testing.assert_allclose(out.shape, truth["shape"], atol=1e-7)
    values, _ = initial_values(out, fake_item(), scene, 224)
    assert set(values) == {"shape"}
    np.testing.assert_allclose(values["shape"], truth["shape"][: scene.flame.n_shape], atol=1e-7)


@pytest.mark.parametrize("with_opencv, numpy1", [(True, False), (False, False), (True, True)])
def test_metrical_tracker_frame(tmp_path, scene, with_opencv, numpy1):
    path, truth = rf.metrical_frame(tmp_path, with_opencv=with_opencv, numpy1=numpy1)
    out = read_regressor_output(path)
    assert out.format == "metrical-tracker .frame" and out.perspective
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-5)  # 6-D jaw and eyes -> axis-angle
    np.testing.assert_allclose(out.shape, truth["shape"], atol=1e-6)
    np.testing.assert_allclose(out.light, truth["light"], atol=1e-6)
    values, notes = initial_values(out, fake_item(), scene, 224)
    assert "camera" not in values and "perspective camera" in notes[0] and "eyelids left out" in notes[0]


def test_pixel3dmm_frame(tmp_path):
    path, truth = rf.pixel3dmm_frame(tmp_path)
    out = read_regressor_output(path)
    assert out.format == "pixel3dmm .frame"
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-5)
    np.testing.assert_allclose(out.expression, truth["expression"], atol=1e-6)


def test_vhap_picks_the_photos_frame(tmp_path):
    path, truths = rf.vhap_params(tmp_path)
    for index, name in enumerate(("00000", "00001", "shoot/00002")):
        out = read_regressor_output(path, frame=name)
        assert out.format == "VHAP tracked_flame_params" and f"frame {index} of 3" in out.notes
        np.testing.assert_allclose(out.pose, truths[index]["pose"], atol=1e-6)
        np.testing.assert_allclose(out.expression, truths[index]["expression"], atol=1e-6)
        np.testing.assert_allclose(out.shape, truths[index]["shape"], atol=1e-6)
    with pytest.raises(ValueError, match=r"holds 3 frames and none has the photo's name \(astronaut\)"):
        read_regressor_output(path, frame="astronaut")
    (tmp_path / "one").mkdir()
    single, truth = rf.vhap_params(tmp_path / "one", frames=("anything",))  # one frame: whatever its name
    np.testing.assert_allclose(read_regressor_output(single, frame="astronaut").pose, truth[0]["pose"], atol=1e-6)


def test_flame_head_tracker_frame(tmp_path):
    path, truth = rf.flame_head_tracker_npz(tmp_path)
    out = read_regressor_output(path)
    assert out.format == "flame-head-tracker" and out.perspective
    np.testing.assert_allclose(out.pose, truth["pose"], atol=1e-6)  # camera Euler angles -> head pose
    np.testing.assert_allclose(out.texture, truth["texture"], atol=1e-6)
    np.testing.assert_allclose(out.light, truth["light"], atol=1e-6)


def test_ringnet_params_half_turn_and_camera(tmp_path, scene):
    path, truth = rf.ringnet_params(tmp_path)
    out = read_regressor_output(path)
    assert out.format == "RingNet params" and out.crop.rule == "ringnet"
    item = fake_item(scale=0.5)
    values, notes = initial_values(out, item, scene, 224)
    np.testing.assert_allclose(values["pose"], truth["pose"], atol=1e-5)  # the half turn removed
    assert "y-down" in notes[0]
    # RingNet's own projection: its FLAME posed by its y-down global pose about the root joint,
    # ``112 + 112 * s * (v + t)`` in its crop of the whole photo (scale_and_crop), back to the photo.
    with torch.no_grad():
        root = scene.flame(shape=torch.tensor(values["shape"])[None], expression=torch.tensor(
            values["expression"])[None], pose=torch.zeros(1, 15)).joints[0, 0].double().numpy()
    ringnet_rotation = rf.rotation(truth["ringnet_pose"][:3])
    ours_rotation = rf.rotation(truth["pose"][:3])
    height, width = item.image.original_size
    factor = 224 / max(height, width)
    per_axis = np.floor(np.array([width, height]) * factor) / np.array([width, height])
    centre_scaled = np.round(np.round(np.array([height, width]) / 2.0)[::-1] * per_axis)
    s, tx, ty = truth["camera"]
    for point in POINTS:
        theirs = ringnet_rotation @ (point - root) + root
        crop = 112 + 112 * s * (theirs[:2] + [tx, ty])
        photo = (crop + centre_scaled - 112) / per_axis
        ours = ours_rotation @ (point - root) + root
        # RingNet's floor-rounded resize scales x and y by 0.07 % apart here, which one
        # weak-perspective scale cannot follow: a fraction of a pixel at the photo's scale
        np.testing.assert_allclose(our_image_points(values["camera"], ours[None], item, 224)[0] / 0.5,
                                   photo, atol=0.5)


def test_our_params_npz(tmp_path, scene):
    path, truth = rf.ours_params(tmp_path)
    out = read_regressor_output(path)
    assert out.format == "flamefit params.npz" and out.ours
    values, _ = initial_values(out, fake_item(), scene, 224)
    np.testing.assert_allclose(values["camera"], truth["camera"])
    np.testing.assert_allclose(values["pose"], truth["pose"], atol=1e-6)
    np.testing.assert_allclose(values["texture"][:12], truth["texture"][: scene.albedo.n_components])


# -- the model in use ----------------------------------------------------------------------------
def test_flame_coefficients_are_dropped_for_a_model_that_is_not_flame(tmp_path, scene, monkeypatch):
    monkeypatch.setattr(scene, "model_kind", "open")
    path, truth = rf.deca_codedict(tmp_path)
    values, notes = initial_values(read_regressor_output(path), fake_item(), scene, 224)
    assert set(values) == {"pose", "light", "camera"}
    assert len(notes) == 2 and "shape, expression, texture of the DECA codedict dropped" in notes[1]
    np.testing.assert_allclose(values["pose"], truth["pose"], atol=1e-6)
    with pytest.raises(ValueError, match="are FLAME's, but the model in use"):
        load_shape_prior(rf.mica_folder(tmp_path / "mica")[0], scene)
    # our own params.npz comes from the model that wrote it: kept
    values, notes = initial_values(read_regressor_output(rf.ours_params(tmp_path)[0]), fake_item(), scene, 224)
    assert "shape" in values and len(notes) == 1


def test_shape_prior_from_any_file_with_shape(tmp_path, scene):
    folder, truth = rf.mica_folder(tmp_path / "mica")
    shape, found = load_shape_prior(folder / "identity.npy", scene)
    assert found == "MICA identity" and shape.shape == (scene.flame.n_shape,)
    np.testing.assert_allclose(shape, truth["shape"][: scene.flame.n_shape], atol=1e-7)
    shape, found = load_shape_prior(rf.smirk_outputs(tmp_path)[0], scene)
    assert found == "SMIRK dict"
    with pytest.raises(ValueError, match="holds no shape coefficients"):
        np.savez(tmp_path / "pose_only.npz", pose=np.zeros(15))
        load_shape_prior(tmp_path / "pose_only.npz", scene)


def test_shape_prior_pulls_the_shape_toward_its_centre(scene, one_thread):
    """The full stage's identity prior is centred on ``shape_prior_mean``: with the prior alone
    weighing (no landmarks, no pixels), the shape walks from 0 toward the centre."""
    from flamefit.fitting.optimizer import FitConfig, fit_batch

    resolution = 64
    centre = np.zeros(scene.flame.n_shape)
    centre[:3] = [1.0, -0.5, 0.25]
    config = FitConfig(resolution=resolution, rigid_steps=0, full_steps=4, landmark_weight=0.0,
                       photometric_weight=0.0, shape_prior=1.0, full_lr=0.05,
                       shape_prior_mean=tuple(centre))
    images = torch.zeros(1, 3, resolution, resolution)
    landmarks = torch.full((1, 68, 2), resolution / 2.0) + torch.randn(1, 68, 2)
    outcome = fit_batch(scene, images, landmarks, torch.ones(1, 1, resolution, resolution), config)
    moved = outcome.params.shape[0, :3].numpy()
    assert (np.sign(moved) == np.sign(centre[:3])).all() and np.abs(moved).min() > 0.05


# -- wrong files: one line -----------------------------------------------------------------------
def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_key_of_the_wrong_size_names_the_layout(tmp_path):
    path, _ = rf.deca_codedict(tmp_path)
    code = np.load(path, allow_pickle=True).item()
    code["exp"] = torch.zeros(1, 40)
    np.save(path, code, allow_pickle=True)
    with pytest.raises(ValueError) as error:
        read_regressor_output(path)
    assert one_line(error) == (f"{path}: DECA codedict: `exp` has 40 values, expected 50 "
                               "(DECA's expression code)")
    frame, _ = rf.metrical_frame(tmp_path)
    data = torch.load(frame, weights_only=False)
    data["flame"]["jaw"] = np.zeros((1, 3), np.float32)
    torch.save(data, frame)
    with pytest.raises(ValueError, match=r"metrical-tracker \.frame: `flame\.jaw` has 3 values, expected 6 "
                                         r"\(jaw 6-D rotation\)"):
        read_regressor_output(frame)


def test_a_batch_garbage_unknown_and_unsafe_files_are_one_line(tmp_path):
    path = tmp_path / "batch.npy"
    np.save(path, {"shape": np.zeros((2, 100)), "exp": np.zeros((2, 50)), "pose": np.zeros((2, 6)),
                   "cam": np.zeros((2, 3))}, allow_pickle=True)
    with pytest.raises(ValueError) as error:
        read_regressor_output(path)
    assert "holds 2 faces" in one_line(error) and "one face per file" in one_line(error)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(ValueError) as error:
        read_regressor_output(garbage)
    assert one_line(error).startswith(f"{garbage}: ")
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle at all\n")
    with pytest.raises(ValueError) as error:
        read_regressor_output(text)
    assert "is not a NumPy" in one_line(error)
    unknown = tmp_path / "unknown.npz"
    np.savez(unknown, foo=np.zeros(3), bar=np.ones(2))
    with pytest.raises(ValueError) as error:
        read_regressor_output(unknown)
    assert "holds no known layout (keys: bar, foo)" in one_line(error)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"shape": os.system}))
    with pytest.raises(ValueError) as error:
        read_regressor_output(evil)
    assert "refused" in one_line(error) and "posix.system" in one_line(error)
    wrong_mica = tmp_path / "identity.npy"
    np.save(wrong_mica, np.zeros(100, np.float32))
    with pytest.raises(ValueError, match=r"MICA identity: `identity` has 100 values, expected 300"):
        read_regressor_output(wrong_mica)
    with pytest.raises(ValueError, match="no such file"):
        read_regressor_output(tmp_path / "missing.npy")
