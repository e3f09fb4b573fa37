"""Initialisation files (ours and DECA's code dict), atomic writes and resume bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.fitting.parameters import FitParameters, load_initialisation, save_parameters
from flamefit.fitting.results import is_done
from flamefit.utils import atomic_write, write_json


def test_deca_code_dict_maps_to_our_names(tmp_path):
    rng = np.random.default_rng(0)
    code = {
        "shape": rng.normal(size=(1, 100)), "exp": rng.normal(size=(1, 50)),
        "pose": rng.normal(size=(1, 6)), "cam": np.array([[8.0, 0.01, -0.02]]),
        "tex": rng.normal(size=(1, 50)), "light": rng.normal(size=(1, 9, 3)),
    }
    path = tmp_path / "deca_code.npy"
    np.save(path, code, allow_pickle=True)
    init = load_initialisation(path, n_shape=120, n_expression=30, n_texture=10)
    np.testing.assert_allclose(init["shape"][:100], code["shape"][0], rtol=1e-6)
    assert init["shape"].shape == (120,) and not init["shape"][100:].any()
    np.testing.assert_allclose(init["expression"], code["exp"][0, :30], rtol=1e-6)
    np.testing.assert_allclose(init["texture"], code["tex"][0, :10], rtol=1e-6)
    np.testing.assert_allclose(init["pose"][:3], code["pose"][0, :3], rtol=1e-6)
    np.testing.assert_allclose(init["pose"][6:9], code["pose"][0, 3:], rtol=1e-6)
    assert not init["pose"][3:6].any() and not init["pose"][9:].any()
    np.testing.assert_allclose(init["light"], code["light"][0], rtol=1e-6)
    np.testing.assert_allclose(init["camera"], code["cam"][0], rtol=1e-6)


def test_our_params_round_trip(tmp_path):
    params = FitParameters.zeros(2, 5, 4, 3, camera=torch.tensor([[9.0, 0.1, 0.2]]))
    params.shape[1] = torch.arange(5.0)
    save_parameters(tmp_path / "params.npz", params.item(1), camera_type=np.array("orthographic"))
    init = load_initialisation(tmp_path / "params.npz", n_shape=5, n_expression=4, n_texture=3)
    np.testing.assert_allclose(init["shape"], np.arange(5.0))
    np.testing.assert_allclose(init["camera"], [9.0, 0.1, 0.2], rtol=1e-6)


def test_bad_initialisation_files_are_named(tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, unrelated=np.zeros(3))
    with pytest.raises(ValueError, match="empty.npz: holds none of"):
        load_initialisation(empty, 10, 10, 10)
    bad_pose = tmp_path / "pose.npz"
    np.savez(bad_pose, pose=np.zeros(7))
    with pytest.raises(ValueError, match="pose has 7 values"):
        load_initialisation(bad_pose, 10, 10, 10)
    with pytest.raises(ValueError, match="unsupported parameter file type"):
        load_initialisation(tmp_path / "code.txt", 10, 10, 10)


def test_select_keeps_items_per_mask():
    a = FitParameters.zeros(3, 2, 2, 2, camera=torch.tensor([[1.0, 0.0, 0.0]]))
    b = FitParameters.zeros(3, 2, 2, 2, camera=torch.tensor([[2.0, 0.0, 0.0]]))
    mixed = a.select(torch.tensor([True, False, True]), b)
    assert mixed.camera[:, 0].tolist() == [1.0, 2.0, 1.0]


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out" / "file.bin"
    atomic_write(target, lambda stream: stream.write(b"old"))

    def failing(stream):
        stream.write(b"half")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_done_only_when_report_says_so(tmp_path):
    assert not is_done(tmp_path)
    write_json(tmp_path / "report.json", {"status": "failed", "error": "no face"})
    assert not is_done(tmp_path)
    write_json(tmp_path / "report.json", {"status": "done", "value": np.float32(1.5)})
    assert is_done(tmp_path)
    (tmp_path / "report.json").write_text("{truncated")
    assert not is_done(tmp_path)
