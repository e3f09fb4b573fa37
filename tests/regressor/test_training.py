"""Training the image regressor: the loss falls, a stopped run resumes exactly, fits as labels."""

from __future__ import annotations

import json

import pytest
import torch

from flamefit.regressor.options import TrainingSettings

TINY = dict(batch_size=8, resolution=64, width=8, validation_size=16, learning_rate=3e-3)


@pytest.fixture(scope="module")
def scene():
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    return HeadScene.from_model_files(select_model(open_model=True))


def test_a_tiny_training_runs_end_to_end_and_the_loss_falls(scene, tmp_path, one_thread):
    from flamefit.fitting.image_regressor import load_image_regressor
    from flamefit.regressor.training import train_regressor

    settings = TrainingSettings(steps=60, validation_every=20, checkpoint_every=30, **TINY)
    network, log = train_regressor(scene, tmp_path, settings, show_progress=False)
    first, last = log.validation[0], log.validation[-1]
    assert [v["step"] for v in log.validation] == [20, 40, 60]
    assert last["loss"] < first["loss"]
    assert sum(log.loss[-3:]) < sum(log.loss[:3])
    for name in ("regressor.pt", "checkpoint.pt", "training.json", "training.png"):
        assert (tmp_path / name).is_file()
    summary = json.loads((tmp_path / "training.json").read_text())
    assert summary["finished"] and summary["step"] == 60 and len(summary["validation"]) == 3
    loaded = load_image_regressor(tmp_path)
    images = torch.rand(2, 3, 64, 64)
    assert torch.allclose(loaded.predict(images).camera, network.eval().predict(images).camera, atol=1e-5)


def test_a_stopped_run_resumes_where_it_stopped_and_ends_as_an_unbroken_run(scene, tmp_path, one_thread):
    from flamefit.regressor.training import TrainingStopped, train_regressor

    settings = TrainingSettings(steps=10, validation_every=5, checkpoint_every=4, **TINY)
    unbroken, _ = train_regressor(scene, tmp_path / "unbroken", settings, show_progress=False)

    def stop_at_7(step: int, loss: float) -> None:
        if step == 7:
            raise TrainingStopped()

    with pytest.raises(TrainingStopped):
        train_regressor(scene, tmp_path / "broken", settings, show_progress=False, progress=stop_at_7)
    saved = json.loads((tmp_path / "broken" / "training.json").read_text())
    assert saved["step"] == 7 and not saved["finished"]
    seen = []
    resumed, log = train_regressor(scene, tmp_path / "broken", settings, show_progress=False,
                                   progress=lambda step, loss: seen.append(step))
    assert seen == [8, 9, 10]
    assert [v["step"] for v in log.validation] == [5, 10]
    for (name, a), b in zip(unbroken.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_resuming_with_other_settings_is_refused(scene, tmp_path, one_thread):
    from flamefit.regressor.training import train_regressor
    from flamefit.utils import UsageError

    train_regressor(scene, tmp_path, TrainingSettings(steps=2, **TINY), show_progress=False)
    with pytest.raises(UsageError, match="learning_rate"):
        train_regressor(scene, tmp_path, TrainingSettings(steps=2, **{**TINY, "learning_rate": 1e-4}),
                        show_progress=False)
    with pytest.raises(UsageError, match="nothing to train on"):
        train_regressor(scene, tmp_path / "none", TrainingSettings(synthetic=False, **TINY), show_progress=False)


def test_fit_results_become_crops_and_labels(scene, tmp_path, one_thread):
    """A fit's result folder gives back the very crop its parameters refer to (here re-cut at
    twice the fit's resolution), and trains; regress outputs and other models are left out."""
    import numpy as np

    from flamefit.fitting.batch import FitOptions, fit_images
    from flamefit.fitting.prepare import prepare_image
    from flamefit.regressor.fit_labels import load_fit_labels
    from flamefit.fitting.image_regressor import ImageRegressor, RegressorSpec
    from flamefit.regressor.options import RegressOptions
    from flamefit.regressor.regress import regress_images
    from flamefit.regressor.training import save_regressor, train_regressor
    from tests.regressor.photos import astronaut_with_landmarks

    photo, landmarks = astronaut_with_landmarks(tmp_path)
    summary = fit_images([photo], tmp_path / "fits", FitOptions(
        landmarks=landmarks, rigid_steps=2, full_steps=2, resolution=64, device="cpu", open_model=True),
        show_progress=False)
    assert summary.fitted == ["astronaut"]
    spec = RegressorSpec(n_shape=scene.flame.n_shape, n_expression=scene.flame.n_expression,
                         n_texture=scene.albedo.n_components, expression_bounds=scene.flame.expression_bounds,
                         resolution=128, width=8, model_description=scene.description)
    labels = load_fit_labels(tmp_path / "fits", spec)
    assert labels.ids == ["astronaut"] and labels.images.shape == (1, 3, 128, 128)
    crop = prepare_image(photo, "astronaut", resolution=128, landmarks_path=landmarks).crop
    assert np.abs(labels.images[0].permute(1, 2, 0).numpy() / 255.0 - crop).mean() < 0.004
    saved = np.load(tmp_path / "fits" / "astronaut" / "params.npz")
    assert np.allclose(labels.params.pose[0].numpy(), saved["pose"])
    settings = TrainingSettings(steps=2, synthetic=False, from_fits=str(tmp_path / "fits"), **TINY)
    train_regressor(scene, tmp_path / "distilled", settings, show_progress=False)
    assert (tmp_path / "distilled" / "regressor.pt").is_file()

    save_regressor(tmp_path / "model" / "regressor.pt", ImageRegressor(spec).eval(), 0, TrainingSettings())
    regress_images([photo], tmp_path / "regressed", RegressOptions(model=tmp_path / "model", device="cpu",
                                                                    landmarks=landmarks), show_progress=False)
    with pytest.raises(ValueError, match="a regressor's prediction"):
        load_fit_labels(tmp_path / "regressed", spec)
    other = RegressorSpec(**{**spec.to_dict(), "model_description": "FLAME 2020"})
    with pytest.raises(ValueError, match="the regressor is for FLAME 2020"):
        load_fit_labels(tmp_path / "fits", other)


def test_ctrl_c_in_the_middle_of_a_step_stops_after_it_and_resumes_exactly(scene, tmp_path, one_thread):
    import os
    import signal

    from flamefit.fitting.image_regressor import ImageRegressor
    from flamefit.regressor.training import train_regressor

    settings = TrainingSettings(steps=6, validation_every=6, checkpoint_every=6, **TINY)
    unbroken, _ = train_regressor(scene, tmp_path / "unbroken", settings, show_progress=False)
    calls = {"n": 0}
    forward = ImageRegressor.forward

    def interrupted_forward(self, images):
        calls["n"] += 1
        if calls["n"] == 4:  # the forward pass of step 4: batch norm has seen the batch
            os.kill(os.getpid(), signal.SIGINT)
        return forward(self, images)

    ImageRegressor.forward = interrupted_forward
    try:
        with pytest.raises(KeyboardInterrupt):
            train_regressor(scene, tmp_path / "broken", settings, show_progress=False)
    finally:
        ImageRegressor.forward = forward
    assert json.loads((tmp_path / "broken" / "training.json").read_text())["step"] == 4
    resumed, _ = train_regressor(scene, tmp_path / "broken", settings, show_progress=False)
    for (name, a), b in zip(unbroken.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
