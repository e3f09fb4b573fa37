"""``flamefit fit`` end to end on real and broken inputs (CPU, reduced steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from flamefit.cli import main
from flamefit.fitting.batch import FitOptions, fit_images

pytestmark = pytest.mark.slow  # every test runs `flamefit fit` end to end (detection, fit, outputs)

EXPECTED_OUTPUTS = {"params.npz", "mesh.obj", "mesh.mtl", "mesh.png", "mesh.glb", "camera.npz",
                    "landmarks.npz", "overlay.png", "sheet.png", "report.json"}


@pytest.fixture(autouse=True)
def demo_head_cache(demo_head_dir, monkeypatch):
    """Point flamefit at the session's demo head and away from any data/flame of the checkout."""
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))


@pytest.fixture(scope="module")
def astronaut_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def quick(**kwargs) -> FitOptions:
    """A few rigid steps only: enough to exercise every output path quickly."""
    return FitOptions(rigid_steps=5, full_steps=0, **kwargs)


def report(folder) -> dict:
    return json.loads((folder / "report.json").read_text())


@pytest.fixture(scope="module")
def astronaut_fit(astronaut_path, tmp_path_factory, demo_head_dir):
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    patcher.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))
    out = tmp_path_factory.mktemp("fit")
    status = main(["fit", str(astronaut_path), "--out", str(out), "--iters", "100,150",
                   "--device", "cpu", "--gif"])
    patcher.undo()
    return status, out / "astronaut"


def test_cli_writes_every_output_and_fits_landmarks(astronaut_fit):
    status, folder = astronaut_fit
    assert status == 0
    assert EXPECTED_OUTPUTS | {"progress.gif"} <= {p.name for p in folder.iterdir()}
    rep = report(folder)
    assert rep["status"] == "done" and rep["model"] == "ICT-FaceKit Light (MIT), converted by flamefit"
    assert rep["device"] == "cpu" and rep["backend"] == "torch"  # "auto" settled and recorded
    assert rep["landmark_error_percent_iod"] < 5.0
    with np.load(folder / "landmarks.npz") as lmk:
        assert lmk["detected"].shape == (68, 2) and lmk["fitted"].shape == (68, 2)
    from flamefit.fitting.mediapipe_detect import litert_available

    if litert_available():  # --detector auto: MediaPipe's 478 points, fitted with the 68
        assert rep["detector"] == "mediapipe" and rep["landmarks_source"] == "mediapipe"
        dense = rep["dense_landmarks"]
        assert dense["points_detected"] == 478 and dense["points_fitted"] > 150
        assert dense["median_error_percent_iod"] < 5.0
        with np.load(folder / "landmarks.npz") as lmk:
            used = lmk["dense_used"]
            assert lmk["detected_dense"].shape == lmk["fitted_dense"].shape == (478, 2)
            assert used.sum() == dense["points_fitted"]
            assert np.isfinite(lmk["fitted_dense"][used]).all() and np.isnan(lmk["fitted_dense"][~used]).all()
            gap = np.linalg.norm(lmk["fitted_dense"][used] - lmk["detected_dense"][used], axis=1)
            assert np.median(gap) < 3.0  # px of the 512² photo; the face is ~90 px wide
    else:
        assert rep["detector"] == "dlib" and "dense_landmarks" not in rep
    with np.load(folder / "params.npz") as params:
        assert params["pose"].shape == (15,) and params["light"].shape == (9, 3)
        assert params["camera"].shape == (3,)
    import trimesh

    mesh = trimesh.load(folder / "mesh.obj", process=False)
    assert len(mesh.faces) > 5000
    # mesh.glb: the same head, its albedo embedded (self-contained)
    glb = list(trimesh.load(folder / "mesh.glb").geometry.values())
    assert len(glb) == 1 and len(glb[0].faces) == len(mesh.faces)
    np.testing.assert_allclose(glb[0].bounds, mesh.bounds, atol=1e-6)
    embedded = np.asarray(glb[0].visual.material.baseColorTexture.convert("RGB"))
    np.testing.assert_array_equal(embedded, np.asarray(Image.open(folder / "mesh.png").convert("RGB")))


def test_camera_reproduces_fitted_landmarks_in_the_original_photo(astronaut_fit):
    """OpenCV K, R, t of camera.npz project the fitted mesh's landmarks onto the photo."""
    import cv2
    import torch

    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    _, folder = astronaut_fit
    scene = HeadScene.from_model_files(select_model())
    with np.load(folder / "params.npz") as p:
        params = {k: torch.tensor(p[k])[None].float() for k in ("shape", "expression", "pose")}
    with torch.no_grad():
        points = scene.flame(**params).landmarks[0].double().numpy()
    with np.load(folder / "camera.npz") as cam, np.load(folder / "landmarks.npz") as lmk:
        rvec, _ = cv2.Rodrigues(cam["R"])
        projected, _ = cv2.projectPoints(points, rvec, cam["t"], cam["K"], None)
        fitted = lmk["fitted"]
    # Both in pixel-index coordinates (OpenCV's): the camera maps onto the photo exactly.
    np.testing.assert_allclose(projected[:, 0], fitted, atol=0.05)


def test_rerun_skips_done_and_resumes_unfinished(astronaut_path, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        (photos / f"{name}.png").write_bytes(astronaut_path.read_bytes())
    out = tmp_path / "out"
    first = fit_images([photos], out, quick(), show_progress=False)
    assert sorted(first.fitted) == ["a", "b"]
    # A crash after b's outputs but before its report: b has no report.json and is refitted.
    (out / "b" / "report.json").unlink()
    second = fit_images([photos], out, quick(), show_progress=False)
    assert second.skipped == ["a"] and second.fitted == ["b"]
    third = fit_images([photos], out, quick(overwrite=True), show_progress=False)
    assert sorted(third.fitted) == ["a", "b"]


def check_failed(out, name, *fragments):
    rep = report(out / name)
    assert rep["status"] == "failed"
    for fragment in fragments:
        assert fragment in rep["error"], rep["error"]


def test_not_an_image_is_recorded_and_the_batch_goes_on(astronaut_path, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    summary = fit_images([bad, astronaut_path], tmp_path / "out", quick(), show_progress=False)
    assert summary.fitted == ["astronaut"] and list(summary.failed) == ["notes"]
    check_failed(tmp_path / "out", "notes", "notes.jpg")


def test_truncated_file(astronaut_path, tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(astronaut_path.read_bytes()[:5000])
    summary = fit_images([cut], tmp_path / "out", quick(), show_progress=False)
    assert list(summary.failed) == ["cut"]
    check_failed(tmp_path / "out", "cut", "cut.png")


def test_no_face(tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 180, np.uint8)).save(blank)
    summary = fit_images([blank], tmp_path / "out", quick(), show_progress=False)
    assert list(summary.failed) == ["wall"]
    check_failed(tmp_path / "out", "wall", "no face")


def two_faces_photo(folder):
    """The astronaut's face twice: a large copy on the left, a smaller one on the right."""
    face = data.astronaut()[20:260, 120:360]
    small = np.asarray(Image.fromarray(face).resize((160, 160)))
    canvas = np.full((300, 560, 3), 200, np.uint8)
    canvas[30:270, 10:250] = face
    canvas[70:230, 330:490] = small
    path = folder / "two.png"
    Image.fromarray(canvas).save(path)
    return path


def test_several_faces_fits_the_largest_and_says_so(tmp_path):
    path = two_faces_photo(tmp_path)
    summary = fit_images([path], tmp_path / "out", quick(), show_progress=False)
    assert summary.fitted == ["two"]
    rep = report(tmp_path / "out" / "two")
    assert rep["n_faces"] == 2 and any("2 faces found" in note for note in rep["notes"])


def test_face_too_small(tmp_path):
    tiny = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96)))
    canvas = np.full((400, 400, 3), 128, np.uint8)
    canvas[150:246, 150:246] = tiny
    path = tmp_path / "far.png"
    Image.fromarray(canvas).save(path)
    summary = fit_images([path], tmp_path / "out", quick(), show_progress=False)
    assert list(summary.failed) == ["far"]
    check_failed(tmp_path / "out", "far", "far.png")


def test_huge_image_is_downscaled_and_results_map_back(tmp_path):
    big = np.asarray(Image.fromarray(data.astronaut()).resize((2600, 2600)))
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=90)
    summary = fit_images([path], tmp_path / "out", quick(), show_progress=False)
    assert summary.fitted == ["big"]
    rep = report(tmp_path / "out" / "big")
    assert rep["image_size"] == [2600, 2600]
    from flamefit.fitting.detect import detect_face

    small = detect_face(data.astronaut()).landmarks * (2600 / 512)
    with np.load(tmp_path / "out" / "big" / "landmarks.npz") as lmk:
        # Landmarks are in the original photo's pixels, not the downscaled working copy's.
        np.testing.assert_allclose(lmk["detected"], small, atol=20)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "exif"])
def test_unusual_pixel_formats_are_fitted(astronaut_path, tmp_path, mode):
    rgb = Image.open(astronaut_path).convert("RGB")
    path = tmp_path / f"photo_{mode.replace(';', '')}.png"
    if mode == "L":
        rgb.convert("L").save(path)
    elif mode == "RGBA":
        rgb.convert("RGBA").save(path)
    elif mode == "I;16":
        values = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        Image.fromarray(values).save(path)
    else:
        path = path.with_suffix(".jpg")
        exif = Image.Exif()
        exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
        rgb.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    summary = fit_images([path], tmp_path / "out", quick(), show_progress=False)
    assert summary.fitted == [path.stem], summary.failed


def test_landmark_file_of_the_wrong_shape(astronaut_path, tmp_path):
    wrong = tmp_path / "astronaut.npy"
    np.save(wrong, np.zeros((5, 2)))
    summary = fit_images([astronaut_path], tmp_path / "out", quick(landmarks=wrong),
                         show_progress=False)
    assert list(summary.failed) == ["astronaut"]
    check_failed(tmp_path / "out", "astronaut", "astronaut.npy")


def test_mask_of_the_wrong_size(astronaut_path, tmp_path):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((100, 80), 255, np.uint8)).save(mask)
    summary = fit_images([astronaut_path], tmp_path / "out", quick(mask=mask), show_progress=False)
    assert list(summary.failed) == ["astronaut"]
    check_failed(tmp_path / "out", "astronaut", "512")


def test_unwritable_output_folder_is_one_clear_error(astronaut_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    status = main(["fit", str(astronaut_path), "--out", str(blocker / "out"), "--iters", "5,0"])
    assert status == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_face_option_picks_another_face(tmp_path):
    path = two_faces_photo(tmp_path)
    summary = fit_images([path], tmp_path / "out", quick(face_index=1), show_progress=False)
    assert summary.fitted == ["two"]
    with np.load(tmp_path / "out" / "two" / "landmarks.npz") as lmk:
        assert lmk["detected"][:, 0].min() > 300  # the smaller face, on the right


def test_init_regressor_starts_from_the_landmark_regressor(astronaut_path, tmp_path):
    from flamefit.fitting.landmark_regressor import SHIPPED_REGRESSOR, load_regressor

    assert load_regressor(SHIPPED_REGRESSOR) is not None  # the open model's ships with flamefit
    out = tmp_path / "out"
    status = main(["fit", str(astronaut_path), "--out", str(out), "--iters", "0,5", "--device", "cpu",
                   "--init", "regressor", "--open-model"])
    assert status == 0
    rep = report(out / "astronaut")
    assert any("landmark regressor" in note for note in rep["notes"])
    # with no rigid stage at all, the regressor's pose and camera already put the landmarks
    # close to the detected ones (a zero start would be off by the whole head turn)
    assert rep["landmark_error_percent_iod"] < 15.0
    assert rep["init"] == "regressor" and rep["schedule"] == [0, 5]


def test_init_auto_is_the_default_and_zero_stays_possible(astronaut_path, tmp_path):
    from flamefit.fitting.options import REGRESSOR_STEPS

    out = tmp_path / "out"
    for name, extra in (("auto", []), ("zero", ["--init", "zero"])):
        status = main(["fit", str(astronaut_path), "--out", str(out / name), "--iters", "0,3",
                       "--device", "cpu", "--open-model", *extra])
        assert status == 0
    auto, zero = report(out / "auto" / "astronaut"), report(out / "zero" / "astronaut")
    assert auto["init"] == "regressor (auto)"  # the open model's regressor ships
    assert any("landmark regressor" in note for note in auto["notes"])
    assert zero["init"] == "zero" and not any("landmark regressor" in note for note in zero["notes"])
    # without --iters the regressor's start gets the short schedule (fit_images resolves it)
    from flamefit.fitting.batch import start_session

    session = start_session(FitOptions(device="cpu", open_model=True), "cpu")
    assert (session.config.rigid_steps, session.config.full_steps) == REGRESSOR_STEPS
    assert session.context["schedule"] == list(REGRESSOR_STEPS)
    assert session.config.start_rotation_prior > 0  # the regressor's pose is kept near
    session = start_session(FitOptions(device="cpu", open_model=True, init="zero"), "cpu")
    assert (session.config.rigid_steps, session.config.full_steps) == (200, 800)
    assert (session.config.full_lr, session.config.final_lr_fraction) == (0.005, 1.0)
    assert session.config.start_rotation_prior == 0
    # a fit refining flamefit's own result (regress's, here the auto fit's) gets the refinement
    # schedule: no rigid stage, a higher learning rate that decays
    from flamefit.fitting.options import RESULT_SCHEDULE

    session = start_session(FitOptions(device="cpu", open_model=True, init=out / "auto"), "cpu")
    assert session.start == "result"
    assert (session.config.rigid_steps, session.config.full_steps) == RESULT_SCHEDULE.steps
    assert (session.config.full_lr, session.config.final_lr_fraction) == (
        RESULT_SCHEDULE.full_lr, RESULT_SCHEDULE.final_lr_fraction)
    # ... warming up, with faster identity and expression coefficients
    assert (session.config.warmup_steps, session.config.shape_lr_factor, session.config.expression_lr_factor) == (
        RESULT_SCHEDULE.warmup_steps, RESULT_SCHEDULE.shape_lr_factor, RESULT_SCHEDULE.expression_lr_factor)
    assert session.config.shape_lr_factor > 1 and session.config.even_camera_steps
