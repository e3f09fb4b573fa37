"""The image regressor's network: output layout, neutral start, files."""

from __future__ import annotations

import pytest
import torch

from flamefit.fitting.image_regressor import ImageRegressor, RegressorSpec, parameters_from_outputs

SPEC = RegressorSpec(n_shape=10, n_expression=5, n_texture=4, expression_bounds=(0.0, 1.0),
                     resolution=64, width=8)


def test_a_zero_output_is_a_neutral_frontal_face_filling_the_crop():
    network = ImageRegressor(SPEC).eval()
    params = network.predict(torch.rand(2, 3, 64, 64))
    assert params.shape.shape == (2, 10) and params.expression.shape == (2, 5)
    assert params.texture.shape == (2, 4) and params.light.shape == (2, 9, 3) and params.pose.shape == (2, 15)
    assert torch.allclose(params.pose, torch.zeros(2, 15), atol=1e-6)
    assert torch.allclose(params.camera, torch.tensor([[8.0, 0.0, 0.0]] * 2))
    assert torch.all(params.shape == 0)
    assert torch.all((params.expression >= 0) & (params.expression <= 1))
    assert torch.all(params.light[:, 0] > 0) and torch.all(params.light[:, 1:] == 0)


def test_decoded_rotation_is_a_rotation_and_round_trips_through_the_pose():
    from flamefit.flame.lbs import batch_rodrigues

    network = ImageRegressor(SPEC)
    raw = torch.randn(6, SPEC.n_outputs)
    out = network.decode(raw)
    rotation = out["rotation"]
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(6, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(6), atol=1e-5)
    params = parameters_from_outputs(out)
    assert torch.allclose(batch_rodrigues(params.pose[:, :3]), rotation, atol=1e-4)
    assert torch.all(params.camera[:, 0] > 0)


def test_saved_regressor_loads_with_the_same_predictions(tmp_path):
    from flamefit.regressor.options import TrainingSettings
    from flamefit.fitting.image_regressor import load_image_regressor
    from flamefit.regressor.training import save_regressor

    network = ImageRegressor(SPEC)
    with torch.no_grad():
        network.head[-1].bias.normal_()
    network.eval()
    save_regressor(tmp_path / "regressor.pt", network, 5, TrainingSettings())
    loaded = load_image_regressor(tmp_path)  # the folder works too
    images = torch.rand(3, 3, 64, 64)
    assert torch.allclose(loaded.predict(images).pose, network.predict(images).pose)
    assert loaded.spec == SPEC


def test_a_wrong_regressor_file_is_one_clear_error(tmp_path):
    from flamefit.fitting.image_regressor import load_image_regressor

    with pytest.raises(ValueError, match="no trained image regressor there"):
        load_image_regressor(tmp_path)
    (tmp_path / "regressor.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable regressor file"):
        load_image_regressor(tmp_path / "regressor.pt")
    torch.save({"version": 999}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="another format version"):
        load_image_regressor(tmp_path / "other.pt")


def test_the_shipped_regressor_is_for_the_open_model_and_predicts_a_face():
    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.flame.selection import select_model
    from flamefit.fitting.options import SHIPPED_IMAGE_REGRESSOR_DIR
    from flamefit.fitting.image_regressor import load_image_regressor

    network = load_image_regressor(SHIPPED_IMAGE_REGRESSOR_DIR)
    assert network.spec.model_sha256 == model_sha256(select_model(open_model=True).model)
    params = network.predict(torch.full((1, 3, network.spec.resolution, network.spec.resolution), 0.5))
    assert torch.isfinite(params.pose).all() and 4 < float(params.camera[0, 0]) < 20
    assert (SHIPPED_IMAGE_REGRESSOR_DIR / "training.json").is_file() and (SHIPPED_IMAGE_REGRESSOR_DIR / "training.png").is_file()
