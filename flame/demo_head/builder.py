"""Assemble every array of the demo head from its anatomy (no files involved)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from flamefit.flame.demo_head.albedo import texture_space
from flamefit.flame.demo_head.anatomy import Anatomy
from flamefit.flame.demo_head.blendshapes import N_EXPRESSION, N_SHAPE, expression_blendshapes, identity_blendshapes
from flamefit.flame.demo_head.geometry import HeadLayout, build_vertices, make_layout, vertex_normals
from flamefit.flame.demo_head.landmarks import landmark_embedding
from flamefit.flame.demo_head.masks import vertex_masks
from flamefit.flame.demo_head.rig import KINTREE_TABLE, jaw_weight, joint_regressor, pose_correctives, skinning_weights
from flamefit.flame.demo_head.uv import uv_atlas

GENERATOR_VERSION = 1
MODEL_NAME = "flamefit open demo head (not FLAME)"


@dataclass(frozen=True)
class DemoHead:
    """All arrays of the demo head (model space: metres, y up, +z toward the viewer)."""

    layout: HeadLayout
    model: dict  # the generic_model.pkl dict
    landmarks: dict[str, np.ndarray]  # DECA keys, numpy arrays
    vt: np.ndarray  # (T, 2)
    ft: np.ndarray  # (F, 3)
    masks: dict[str, np.ndarray]
    albedo_mean: np.ndarray  # (H, W, 3)
    albedo_basis: np.ndarray  # (H, W, 3, K)


def build_demo_head(anatomy: Anatomy | None = None) -> DemoHead:
    """Generate the demo head deterministically from ``anatomy`` (default proportions)."""
    anatomy = anatomy or Anatomy()
    layout = make_layout()
    faces = layout.faces
    vertices, distances = build_vertices(layout, anatomy)
    normals = vertex_normals(vertices, faces)
    regressor = joint_regressor(vertices, layout, anatomy)
    weights = skinning_weights(vertices, layout, anatomy)
    jaw = jaw_weight(vertices, layout, anatomy)
    shapedirs = identity_blendshapes(layout, anatomy, vertices, normals, distances)
    exprdirs = expression_blendshapes(layout, anatomy, vertices, normals, distances, jaw)
    model = {
        "v_template": vertices,
        "f": faces.astype(np.uint32),
        "shapedirs": np.ascontiguousarray(np.concatenate([shapedirs, exprdirs], axis=2)),
        "posedirs": pose_correctives(vertices, normals, layout, anatomy),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": KINTREE_TABLE.copy(),
        "J": np.asarray(regressor @ vertices),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "n_shape": N_SHAPE,
        "n_expression": N_EXPRESSION,
        "model_name": MODEL_NAME,
        "generator_version": GENERATOR_VERSION,
    }
    vt, ft = uv_atlas(layout, vertices)
    mean, basis = texture_space(layout, anatomy, vertices, faces, vt, ft)
    return DemoHead(
        layout=layout,
        model=model,
        landmarks=landmark_embedding(layout, anatomy, vertices, faces),
        vt=vt,
        ft=ft,
        masks=vertex_masks(layout, anatomy, vertices),
        albedo_mean=mean,
        albedo_basis=basis,
    )
