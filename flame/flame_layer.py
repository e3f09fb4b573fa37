"""The FLAME layer: a batch-first ``torch.nn.Module`` over the functional :func:`flamefit.flame.lbs.lbs`.

Usage::

    model = FLAME.from_files("data/flame/generic_model.pkl", "data/flame/landmark_embedding.npy",
                             n_shape=100, n_expression=50)
    out = model(shape=shape, expression=expression, pose=pose)   # (B,100), (B,50), (B,15)
    out.vertices        # (B, V, 3) model space, metres
    out.landmarks       # (B, 68, 3) the 2D-fitting landmarks: 17 yaw-dependent contour + 51 static
    out.landmarks_3d    # (B, 68, 3) the fixed 68 3D landmarks

Pose is axis-angle for the joints global, neck, jaw, left eye, right eye ``(B, 15)``; the
6-vector ``(B, 6)`` global + jaw form of DECA is accepted (neck and eyes then stay at rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flamefit.flame.errors import ModelFileError
from flamefit.flame.lbs import batch_rodrigues, lbs
from flamefit.flame.model_data import FlameModelData, LandmarkEmbedding
from flamefit.flame.pose_layout import JOINT_NAMES, N_DECA_POSE, N_JOINTS, deca_to_full

N_CONTOUR = 17
MAX_CONTOUR_YAW_DEG = 39


@dataclass
class FlameOutput:
    """What :class:`FLAME` returns; all in model space (metres).

    Attributes:
        vertices: ``(B, V, 3)`` posed and translated vertices.
        landmarks: ``(B, 68, 3)`` the landmarks that 2D detections are fitted to: 17 contour
            points chosen by the head's yaw (DECA's dynamic contour) followed by the 51 static.
        landmarks_3d: ``(B, 68, 3)`` the fixed 68 3D landmarks.
        joints: ``(B, J, 3)`` posed joints (global, neck, jaw, left eye, right eye).
    """

    vertices: torch.Tensor
    landmarks: torch.Tensor | None
    landmarks_3d: torch.Tensor | None
    joints: torch.Tensor


def points_on_mesh(
    vertices: torch.Tensor, faces: torch.Tensor, face_index: torch.Tensor, bary: torch.Tensor
) -> torch.Tensor:
    """Points given as triangles and barycentric coordinates on a batch of meshes.

    Args:
        vertices: ``(B, V, 3)`` mesh vertices.
        faces: ``(F, 3)`` long triangle vertex indices.
        face_index: ``(B, L)`` or ``(L,)`` long triangle per point.
        bary: ``(B, L, 3)`` or ``(L, 3)`` barycentric coordinates.

    Returns:
        ``(B, L, 3)`` points in the vertices' space.
    """
    batch = vertices.shape[0]
    face_index = face_index.expand(batch, -1) if face_index.dim() == 1 else face_index
    bary = bary.expand(batch, -1, -1) if bary.dim() == 2 else bary
    corner_ids = faces[face_index]  # (B, L, 3)
    corners = torch.gather(
        vertices, 1, corner_ids.reshape(batch, -1, 1).expand(-1, -1, 3)
    ).view(batch, -1, 3, 3)
    return torch.einsum("blk,blkc->blc", bary.to(vertices.dtype), corners)


def yaw_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """Rotation about the y axis (radians) of ``(B, 3, 3)`` matrices, as DECA computes it."""
    cos_pitch = torch.sqrt(rotation[:, 0, 0] ** 2 + rotation[:, 1, 0] ** 2)
    return torch.atan2(-rotation[:, 2, 0], cos_pitch)


def contour_row_for_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """Row of the dynamic contour table for a yaw in radians, DECA's indexing.

    Yaw is rounded to whole degrees and clamped to [-39, 39]; 0..39 degrees use rows 0..39 and
    -1..-39 degrees use rows 40..78 (row ``39 - yaw``).

    Args:
        yaw: ``(B,)`` radians.

    Returns:
        ``(B,)`` long row indices in ``[0, 78]``.
    """
    degrees = torch.round(torch.rad2deg(yaw)).clamp(-MAX_CONTOUR_YAW_DEG, MAX_CONTOUR_YAW_DEG)
    degrees = degrees.long()
    return torch.where(degrees < 0, MAX_CONTOUR_YAW_DEG - degrees, degrees)


def _expand_pose(pose: torch.Tensor, n_joints: int) -> torch.Tensor:
    """Accept ``(B, 3 * J)`` full pose or DECA's ``(B, 6)`` global + jaw pose."""
    if pose.shape[1] == 3 * n_joints:
        return pose
    if pose.shape[1] == N_DECA_POSE and n_joints == N_JOINTS:
        return deca_to_full(pose)
    raise ValueError(
        f"pose has {pose.shape[1]} values per item; expected {3 * n_joints} (axis-angle of "
        f"{', '.join(JOINT_NAMES)}) or {N_DECA_POSE} (global + jaw)"
    )


class FLAME(nn.Module):
    """FLAME head model (or any model in its format: the open ICT-FaceKit model, the test head).

    Buffers hold the model arrays as tensors; the module has no trainable parameters, so fitting
    code owns the shape, expression and pose tensors it optimises.
    """

    def __init__(
        self,
        model: FlameModelData,
        landmarks: LandmarkEmbedding | None = None,
        n_shape: int | None = None,
        n_expression: int | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        n_shape = model.n_shape if n_shape is None else n_shape
        n_expression = model.n_expression if n_expression is None else n_expression
        for name, wanted, have in (
            ("n_shape", n_shape, model.n_shape),
            ("n_expression", n_expression, model.n_expression),
        ):
            if not 0 <= wanted <= have:
                raise ValueError(
                    f"{name}={wanted} but {model.source or 'the model'} has {have} components; "
                    f"use {name} <= {have}"
                )
        self.n_shape = n_shape
        self.n_expression = n_expression
        self.is_demo = model.is_demo
        self.source = model.source
        # Models whose expressions are blendshape weights (ARKit's, in [0, 1]) say so in the file;
        # FLAME's PCA expressions are unbounded (None).
        bounds = model.extras.get("expression_bounds")
        self.expression_bounds = None if bounds is None else tuple(float(b) for b in np.ravel(bounds))
        names = model.extras.get("expression_names")
        self.expression_names = None if names is None else [str(n) for n in np.ravel(names)][:n_expression]

        def buffer(name: str, array: np.ndarray, kind: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=kind))

        buffer("v_template", model.v_template)
        buffer("faces", model.faces, torch.long)
        directions = np.concatenate(
            [model.shapedirs[:, :, :n_shape], model.exprdirs[:, :, :n_expression]], axis=2
        )
        buffer("directions", directions)
        buffer("posedirs", model.posedirs)
        buffer("j_regressor", model.j_regressor)
        buffer("weights", model.weights)
        buffer("parents", model.parents, torch.long)
        # The chain from the neck up to the root: its rotation selects the contour row.
        chain, joint = [], 1
        while joint != -1:
            chain.append(joint)
            joint = int(model.parents[joint])
        buffer("neck_chain", np.array(chain), torch.long)

        self.has_landmarks = landmarks is not None
        if landmarks is not None:
            for name in ("static_faces", "dynamic_faces", "full_faces"):
                index = getattr(landmarks, name)
                if index.size and (index.min() < 0 or index.max() >= model.n_faces):
                    raise ModelFileError(
                        landmarks.source,
                        f"{name} holds face index {int(index.max())} but the model has "
                        f"{model.n_faces} faces; is this the embedding of another model?",
                    )
            buffer("static_faces", landmarks.static_faces, torch.long)
            buffer("static_bary", landmarks.static_bary)
            buffer("dynamic_faces", landmarks.dynamic_faces, torch.long)
            buffer("dynamic_bary", landmarks.dynamic_bary)
            buffer("full_faces", landmarks.full_faces, torch.long)
            buffer("full_bary", landmarks.full_bary)

    @classmethod
    def from_files(
        cls,
        model_path: str | Path,
        landmarks_path: str | Path | None = None,
        n_shape: int | None = None,
        n_expression: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "FLAME":
        """Build the layer from a FLAME-format model file and an optional landmark embedding.

        Args:
            model_path: ``generic_model.pkl``, ``flame2023.pkl`` or a converted ``.npz``.
            landmarks_path: DECA's ``landmark_embedding.npy`` or the RingNet/smplx
                ``flame_static_embedding.pkl`` (its ``flame_dynamic_embedding.npy`` beside it).
            n_shape: identity components to use (default: all in the file).
            n_expression: expression components to use (default: all in the file).
        """
        from flamefit.flame.landmark_embedding import load_landmark_embedding
        from flamefit.flame.model_file import load_flame_model

        model = load_flame_model(model_path)
        landmarks = None
        if landmarks_path is not None:
            landmarks = load_landmark_embedding(landmarks_path, n_faces=model.n_faces)
        return cls(model, landmarks, n_shape=n_shape, n_expression=n_expression, dtype=dtype)

    @property
    def n_joints(self) -> int:
        return int(self.parents.shape[0])

    def contour_rows(self, pose: torch.Tensor) -> torch.Tensor:
        """Dynamic-contour table row per item for a full pose ``(B, 3 * J)``: ``(B,)`` long."""
        batch = pose.shape[0]
        chain_pose = pose.view(batch, -1, 3)[:, self.neck_chain]
        rotations = batch_rodrigues(chain_pose.reshape(-1, 3)).view(batch, -1, 3, 3)
        relative = rotations[:, 0]
        for link in range(1, rotations.shape[1]):
            relative = torch.bmm(rotations[:, link], relative)
        return contour_row_for_yaw(yaw_from_rotation(relative))

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> FlameOutput:
        """Pose the head.

        Args:
            shape: ``(B, <= n_shape)`` identity coefficients (missing trailing ones are zero).
            expression: ``(B, <= n_expression)`` expression coefficients.
            pose: ``(B, 3 * J)`` axis-angle (global, neck, jaw, left eye, right eye), or
                ``(B, 6)`` global + jaw.
            translation: ``(B, 3)`` added to every vertex, landmark and joint (metres).

        Returns:
            :class:`FlameOutput` in model space. Landmark fields are None when the layer was
            built without a landmark embedding.
        """
        given = [t for t in (shape, expression, pose, translation) if t is not None]
        batch = given[0].shape[0] if given else 1
        kwargs = {"dtype": self.v_template.dtype, "device": self.v_template.device}
        shape = self._pad(shape, self.n_shape, batch, "shape", kwargs)
        expression = self._pad(expression, self.n_expression, batch, "expression", kwargs)
        pose = torch.zeros(batch, 3 * self.n_joints, **kwargs) if pose is None else pose
        pose = _expand_pose(pose.to(**kwargs), self.n_joints)

        coefficients = torch.cat([shape, expression], dim=1)
        vertices, joints = lbs(
            coefficients, pose, self.v_template, self.directions, self.posedirs,
            self.j_regressor, self.parents, self.weights,
        )
        if translation is not None:
            offset = translation.to(**kwargs)[:, None, :]
            vertices = vertices + offset
            joints = joints + offset

        landmarks = landmarks_3d = None
        if self.has_landmarks:
            rows = self.contour_rows(pose)
            face_index = torch.cat(
                [self.dynamic_faces[rows], self.static_faces.expand(batch, -1)], dim=1
            )
            bary = torch.cat(
                [self.dynamic_bary[rows], self.static_bary.expand(batch, -1, -1)], dim=1
            )
            landmarks = points_on_mesh(vertices, self.faces, face_index, bary)
            landmarks_3d = points_on_mesh(vertices, self.faces, self.full_faces, self.full_bary)
        return FlameOutput(vertices, landmarks, landmarks_3d, joints)

    @staticmethod
    def _pad(
        values: torch.Tensor | None, size: int, batch: int, name: str, kwargs: dict
    ) -> torch.Tensor:
        if values is None:
            return torch.zeros(batch, size, **kwargs)
        if values.dim() != 2 or values.shape[0] != batch:
            raise ValueError(f"{name} must be (B, <= {size}) with B = {batch}; got {tuple(values.shape)}")
        if values.shape[1] > size:
            raise ValueError(
                f"{name} has {values.shape[1]} coefficients but the layer uses {size}; build it "
                f"with a larger n_{name} or pass fewer coefficients"
            )
        values = values.to(**kwargs)
        if values.shape[1] < size:
            values = torch.nn.functional.pad(values, (0, size - values.shape[1]))
        return values

    def extra_repr(self) -> str:
        kind = "procedural test head" if self.is_demo else "FLAME"
        return (
            f"{kind}: {self.v_template.shape[0]} vertices, {self.faces.shape[0]} faces, "
            f"n_shape={self.n_shape}, n_expression={self.n_expression}, "
            f"landmarks={'yes' if self.has_landmarks else 'no'}"
        )

