"""The layout of the pose vector, named once (torch-free; works on numpy arrays and torch tensors).

A full pose is ``(..., 15)``: the axis-angle rotations (radians, each a 3-vector in the parent
joint's frame) of FLAME's five joints in kinematic-tree order ``global, neck, jaw, left eye,
right eye`` (parents ``[-1, 0, 1, 1, 1]``). Sides are the subject's: the left eye is at +x in
model space.

DECA and its relatives store a 6-vector ``(..., 6)``: global (0:3) followed by jaw (3:6);
:func:`deca_to_full` puts it into the full layout with neck and eyes at rest, and
:func:`full_to_deca` takes it back out (dropping neck and eyes).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "JOINT_NAMES",
    "N_JOINTS",
    "N_POSE",
    "N_DECA_POSE",
    "GLOBAL",
    "NECK",
    "JAW",
    "LEFT_EYE",
    "RIGHT_EYE",
    "EYES",
    "NECK_AND_JAW",
    "DECA_GLOBAL",
    "DECA_JAW",
    "joint_slice",
    "deca_to_full",
    "full_to_deca",
]

JOINT_NAMES = ("global", "neck", "jaw", "left eye", "right eye")
N_JOINTS = len(JOINT_NAMES)
N_POSE = 3 * N_JOINTS  # 15
N_DECA_POSE = 6

GLOBAL = slice(0, 3)  # the whole head about the root (base of the neck)
NECK = slice(3, 6)
JAW = slice(6, 9)
LEFT_EYE = slice(9, 12)  # subject's left
RIGHT_EYE = slice(12, 15)
EYES = slice(9, 15)
NECK_AND_JAW = slice(3, 9)  # the articulated joints below the eyes

DECA_GLOBAL = slice(0, 3)  # in the 6-vector form
DECA_JAW = slice(3, 6)


def joint_slice(joint: int) -> slice:
    """The three pose entries of joint ``joint`` (0 global .. 4 right eye; any joint of a model
    with more joints)."""
    return slice(3 * joint, 3 * joint + 3)


def deca_to_full(pose):
    """DECA's ``(..., 6)`` global + jaw pose -> the full ``(..., 15)`` layout (neck, eyes zero).

    Args:
        pose: ``(..., 6)`` numpy array or torch tensor, axis-angle radians.

    Returns:
        ``(..., 15)`` of the same type, dtype and device.
    """
    if pose.shape[-1] != N_DECA_POSE:
        raise ValueError(f"a DECA pose has {N_DECA_POSE} values (global + jaw), got {pose.shape[-1]}")
    shape = tuple(pose.shape[:-1]) + (N_POSE,)
    full = np.zeros(shape, dtype=pose.dtype) if isinstance(pose, np.ndarray) else pose.new_zeros(shape)
    full[..., GLOBAL] = pose[..., DECA_GLOBAL]
    full[..., JAW] = pose[..., DECA_JAW]
    return full


def full_to_deca(pose):
    """The full ``(..., 15)`` pose -> DECA's ``(..., 6)`` global + jaw (neck and eyes dropped).

    Args:
        pose: ``(..., 15)`` numpy array or torch tensor, axis-angle radians.

    Returns:
        ``(..., 6)`` of the same type, dtype and device.
    """
    if pose.shape[-1] != N_POSE:
        raise ValueError(f"a full pose has {N_POSE} values ({', '.join(JOINT_NAMES)}), got {pose.shape[-1]}")
    shape = tuple(pose.shape[:-1]) + (N_DECA_POSE,)
    short = np.zeros(shape, dtype=pose.dtype) if isinstance(pose, np.ndarray) else pose.new_zeros(shape)
    short[..., DECA_GLOBAL] = pose[..., GLOBAL]
    short[..., DECA_JAW] = pose[..., JAW]
    return short
