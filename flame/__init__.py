"""FLAME head model: file loaders, the LBS layer, landmark embeddings, texture spaces, the
converter of the open ICT-FaceKit model (shipped in ``open_model/``) and the procedural test head.

The public names are imported lazily (see :func:`flamefit.utils.lazy_getattr`).
"""

from __future__ import annotations

from flamefit.utils import lazy_getattr

_EXPORTS = {
    "FLAME": "flamefit.flame.flame_layer",
    "FlameModelData": "flamefit.flame.model_data",
    "LandmarkEmbedding": "flamefit.flame.model_data",
    "UVTemplate": "flamefit.flame.model_data",
    "TextureSpace": "flamefit.flame.model_data",
    "ModelFileError": "flamefit.flame.errors",
    "lbs": "flamefit.flame.lbs",
    "batch_rodrigues": "flamefit.flame.lbs",
    "load_flame_model": "flamefit.flame.model_file",
    "convert_flame_model": "flamefit.flame.model_file",
    "save_flame_npz": "flamefit.flame.model_file",
    "load_landmark_embedding": "flamefit.flame.landmark_embedding",
    "load_uv_template": "flamefit.flame.uv_template",
    "load_texture_space": "flamefit.flame.texture_space_io",
    "save_texture_space": "flamefit.flame.texture_space_io",
    "load_vertex_masks": "flamefit.flame.vertex_masks",
    "ensure_demo_head": "flamefit.flame.demo_head",
    "select_model": "flamefit.flame.selection",
    "ModelFiles": "flamefit.flame.selection",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flamefit.flame", _EXPORTS)
