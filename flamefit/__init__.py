"""flamefit: 3D heads from photographs by analysis-by-synthesis with FLAME-format head models.

One import root, four layers, each depending only on the ones before it:

=========================  ================================================================
``flamefit.utils``         atomic writes, lazy exports (used by every layer)
``flamefit.flame``         the head model: file loaders, LBS layer, landmarks, texture spaces
``flamefit.renderer``      differentiable rasteriser, cameras, shading, export
``flamefit.fitting``       detection, crops, losses, the batched optimiser, fit results
``flamefit.texture_space`` albedo spaces built from many fits
``flamefit.cli``           the ``flamefit`` command (every subcommand is also a Python API)
=========================  ================================================================

The sub-packages live in the repository's top-level folders (``flame/``, ``renderer/``, ...)
and are installed under this one name by setuptools' ``package-dir`` mapping.
"""

__version__ = "0.1.0"
