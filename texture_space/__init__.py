"""Texture spaces from many photographs: unwrapping, visibility, completion of unseen texels,
PCA with bounded memory, and the build-and-iterate pipeline that writes ``FLAME_texture.npz``.

Modules: :mod:`~flamefit.texture_space.unwrap` (fitted photo -> de-lit UV albedo + confidence),
:mod:`~flamefit.texture_space.completion`, :mod:`~flamefit.texture_space.pca`, :mod:`~flamefit.texture_space.evaluation`,
:mod:`~flamefit.texture_space.build` (``flamefit build-texture-space``), :mod:`~flamefit.texture_space.state`
(its resumable folder), :mod:`~flamefit.texture_space.sample` (``flamefit sample-texture-space``) and
:mod:`~flamefit.texture_space.commands` (both subcommands). The main entry points are importable from here
lazily: ``build_texture_space``, ``BuildOptions``, ``sample_texture_space``, ``unwrap_photos``,
``texel_surface``.
"""

from __future__ import annotations

from flamefit.utils import lazy_getattr

_EXPORTS = {
    "build_texture_space": "flamefit.texture_space.build",
    "BuildOptions": "flamefit.texture_space.build",
    "BuildSummary": "flamefit.texture_space.build",
    "sample_texture_space": "flamefit.texture_space.sample",
    "unwrap_photos": "flamefit.texture_space.unwrap",
    "texel_surface": "flamefit.texture_space.unwrap",
}


__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flamefit.texture_space", _EXPORTS)
