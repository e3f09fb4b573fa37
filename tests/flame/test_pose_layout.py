"""The pose layout: slices of the (…, 15) vector and the DECA 6-vector conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.flame import pose_layout as layout


def test_joint_slices_tile_the_pose():
    joints = [layout.GLOBAL, layout.NECK, layout.JAW, layout.LEFT_EYE, layout.RIGHT_EYE]
    assert joints == [layout.joint_slice(j) for j in range(layout.N_JOINTS)]
    covered = np.concatenate([np.arange(layout.N_POSE)[s] for s in joints])
    np.testing.assert_array_equal(covered, np.arange(15))
    whole = np.arange(15)
    np.testing.assert_array_equal(whole[layout.EYES], np.r_[whole[layout.LEFT_EYE], whole[layout.RIGHT_EYE]])
    np.testing.assert_array_equal(whole[layout.NECK_AND_JAW], np.r_[whole[layout.NECK], whole[layout.JAW]])
    assert len(layout.JOINT_NAMES) == layout.N_JOINTS == 5


def test_deca_round_trip_numpy():
    short = np.arange(1, 7, dtype=np.float32)
    full = layout.deca_to_full(short)
    assert full.shape == (15,) and full.dtype == np.float32
    np.testing.assert_array_equal(full[layout.GLOBAL], [1, 2, 3])
    np.testing.assert_array_equal(full[layout.JAW], [4, 5, 6])
    assert not full[layout.NECK].any() and not full[layout.EYES].any()
    np.testing.assert_array_equal(layout.full_to_deca(full), short)


def test_deca_round_trip_torch_batched_with_gradients():
    short = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    full = layout.deca_to_full(short)
    assert full.shape == (4, 15) and full.dtype == torch.float64
    torch.testing.assert_close(layout.full_to_deca(full), short)
    full.sum().backward()
    torch.testing.assert_close(short.grad, torch.ones_like(short))


def test_wrong_sizes_are_refused():
    with pytest.raises(ValueError, match="6 values"):
        layout.deca_to_full(np.zeros(15))
    with pytest.raises(ValueError, match="15 values"):
        layout.full_to_deca(torch.zeros(2, 6))
