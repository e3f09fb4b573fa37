"""FLAME head model: file loaders, the LBS layer, landmark embeddings, texture spaces and the
project's open demo head.

The public names are imported lazily (see :mod:`flame.lazy`).
"""

from __future__ import annotations

from flame.lazy import lazy_getattr

_EXPORTS = {
    "FLAME": "flame.flame_layer",
    "FlameModelData": "flame.model_data",
    "LandmarkEmbedding": "flame.model_data",
    "UVTemplate": "flame.model_data",
    "TextureSpace": "flame.model_data",
    "ModelFileError": "flame.errors",
    "lbs": "flame.lbs",
    "batch_rodrigues": "flame.lbs",
    "load_flame_model": "flame.model_file",
    "convert_flame_model": "flame.model_file",
    "save_flame_npz": "flame.model_file",
    "load_landmark_embedding": "flame.landmark_embedding",
    "load_uv_template": "flame.uv_template",
    "load_texture_space": "flame.texture_space_io",
    "save_texture_space": "flame.texture_space_io",
    "load_vertex_masks": "flame.vertex_masks",
    "ensure_demo_head": "flame.demo_head",
    "select_model": "flame.selection",
    "ModelFiles": "flame.selection",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flame", _EXPORTS)
