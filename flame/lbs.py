"""Linear blend skinning with pose-corrective blendshapes: the published FLAME/SMPL formulation.

All tensors are batch-first and in model space (metres, y up, +z toward the viewer)::

    v_shaped = T + S @ beta                       identity + expression blendshapes
    J        = J_regressor @ v_shaped             joints follow the shape
    v_posed  = v_shaped + P @ vec(R_1..R_K - I)   pose correctives (the root is excluded)
    v        = sum_k w_k * G_k(theta, J) @ v_posed

where ``G_k`` is the world transform of joint ``k`` composed along the kinematic tree, with
the rest-pose joint location removed (so a zero pose leaves ``v_shaped`` unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_rodrigues(axis_angle: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors.

    Args:
        axis_angle: ``(N, 3)`` rotation vectors (axis * angle, radians).
        eps: the angle is ``sqrt(|r|^2 + eps^2)`` so that a zero rotation has the right
            gradient (``dR = skew(dr)``) without biasing non-zero rotations.

    Returns:
        ``(N, 3, 3)`` rotation matrices, ``R = I + sin(a) K + (1 - cos(a)) K^2``.
    """
    angle = torch.sqrt((axis_angle**2).sum(dim=1, keepdim=True) + eps**2)  # (N, 1)
    axis = axis_angle / angle
    cos = torch.cos(angle)[:, :, None]
    sin = torch.sin(angle)[:, :, None]
    x, y, z = axis.unbind(dim=1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)[None]
    return eye + sin * skew + (1.0 - cos) * torch.bmm(skew, skew)


def blend_shapes(coefficients: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Vertex offsets of a linear blendshape model.

    Args:
        coefficients: ``(B, K)`` blendshape coefficients.
        directions: ``(V, 3, K)`` blendshape directions (model space, metres per unit).

    Returns:
        ``(B, V, 3)`` offsets in model space.
    """
    n_vertices, _, n_components = directions.shape
    flat = directions.reshape(n_vertices * 3, n_components)  # a view for contiguous input
    return torch.matmul(coefficients, flat.t()).view(-1, n_vertices, 3)


def vertices_to_joints(j_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations regressed from vertices: ``(J, V) x (B, V, 3) -> (B, J, 3)``."""
    return torch.matmul(j_regressor, vertices)


def _homogeneous(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` and ``(N, 3, 1)`` -> ``(N, 4, 4)`` rigid transforms."""
    top = torch.cat([rotations, translations], dim=2)
    bottom = F.pad(translations.new_zeros(translations.shape[0], 1, 3), (0, 1), value=1.0)
    return torch.cat([top, bottom], dim=1)


def rigid_joint_transforms(
    rotations: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose local joint rotations along the kinematic tree.

    Args:
        rotations: ``(B, J, 3, 3)`` local rotation of each joint.
        joints: ``(B, J, 3)`` rest-pose joint locations (model space).
        parents: ``(J,)`` long, parent of each joint, ``parents[0] == -1``; parents precede
            their children.

    Returns:
        posed_joints: ``(B, J, 3)`` joint locations after posing.
        skinning: ``(B, J, 4, 4)`` transforms mapping a rest-pose point to its posed position
            for a vertex fully attached to that joint.
    """
    batch, n_joints = joints.shape[:2]
    relative = joints.clone()
    relative[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = _homogeneous(rotations.reshape(-1, 3, 3), relative.reshape(-1, 3, 1))
    local = local.view(batch, n_joints, 4, 4)
    parent_of = parents.tolist()  # one host read, not one per joint (a GPU sync each)
    chain = [local[:, 0]]
    for joint in range(1, n_joints):
        chain.append(torch.matmul(chain[parent_of[joint]], local[:, joint]))
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
    posed_joints = world[:, :, :3, 3]
    # Remove the rest-pose joint location: G_k @ [I | -J_k].
    rest = F.pad(joints, (0, 1), value=0.0)[..., None]  # (B, J, 4, 1)
    skinning = world - F.pad(torch.matmul(world, rest), (3, 0))
    return posed_joints, skinning


def lbs(
    coefficients: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    directions: torch.Tensor,
    posedirs: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape, pose-correct and skin a FLAME-format model.

    Args:
        coefficients: ``(B, K)`` identity then expression coefficients.
        pose: ``(B, J * 3)`` axis-angle per joint (FLAME: global, neck, jaw, left eye, right eye).
        v_template: ``(V, 3)`` mean mesh, model space.
        directions: ``(V, 3, K)`` identity then expression blendshapes.
        posedirs: ``(V, 3, 9 * (J - 1))`` pose correctives; column ``9 * (j - 1) + 3 * r + c``
            multiplies ``(R_j - I)[r, c]``.
        j_regressor: ``(J, V)`` joint regressor.
        parents: ``(J,)`` long kinematic parents.
        weights: ``(V, J)`` skinning weights.

    Returns:
        vertices: ``(B, V, 3)`` posed vertices, model space.
        joints: ``(B, J, 3)`` posed joint locations, model space.
    """
    batch = coefficients.shape[0]
    n_joints = parents.shape[0]
    v_shaped = v_template[None] + blend_shapes(coefficients, directions)
    joints = vertices_to_joints(j_regressor, v_shaped)

    rotations = batch_rodrigues(pose.reshape(-1, 3)).view(batch, n_joints, 3, 3)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)  # (B, 9 * (J - 1))
    v_posed = v_shaped + blend_shapes(pose_feature, posedirs)

    posed_joints, skinning = rigid_joint_transforms(rotations, joints, parents)
    # Blend the top 3x4 of each joint transform per vertex: (V, J) @ (B, J, 12) -> (B, V, 12).
    per_vertex = torch.matmul(weights, skinning[:, :, :3, :].reshape(batch, n_joints, 12))
    per_vertex = per_vertex.view(batch, -1, 3, 4)
    vertices = (per_vertex[..., :3] * v_posed[:, :, None, :]).sum(dim=-1) + per_vertex[..., 3]
    return vertices, posed_joints
