"""Texture spaces from many photographs: unwrapping, visibility, completion of unseen texels,
PCA with bounded memory, and the build-and-iterate pipeline that writes ``FLAME_texture.npz``.

Modules: :mod:`~texture_space.unwrap` (fitted photo -> de-lit UV albedo + confidence),
:mod:`~texture_space.completion`, :mod:`~texture_space.pca`, :mod:`~texture_space.evaluation`,
:mod:`~texture_space.build` (``flamefit build-texture-space``), :mod:`~texture_space.state`
(its resumable folder), :mod:`~texture_space.sample` (``flamefit sample-texture-space``) and
:mod:`~texture_space.cli` (both subcommands). The main entry points are importable from here
lazily: ``build_texture_space``, ``BuildOptions``, ``sample_texture_space``, ``unwrap_photos``,
``texel_surface``.
"""

from __future__ import annotations

_EXPORTS = {
    "build_texture_space": "texture_space.build",
    "BuildOptions": "texture_space.build",
    "BuildSummary": "texture_space.build",
    "sample_texture_space": "texture_space.sample",
    "unwrap_photos": "texture_space.unwrap",
    "texel_surface": "texture_space.unwrap",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'texture_space' has no attribute {name!r}")
