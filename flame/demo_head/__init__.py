"""A procedural head in the FLAME file formats (NOT FLAME): a fast TEST FIXTURE.

flamefit's default model is the shipped open model (ICT-FaceKit Light, see
:mod:`flamefit.flame.ict_facekit`); this small generated head (5317 vertices) remains only so
that unit tests can build, render and fit a FLAME-format model quickly. It is reported as the
"procedural test head" wherever it is used.

``ensure_demo_head()`` returns a cached folder with ``generic_model.pkl``,
``landmark_embedding.npy``, ``head_template_mesh.obj``, ``FLAME_masks.pkl``,
``FLAME_texture.npz`` and ``README.txt``, generated deterministically on first use.

Modules: :mod:`anatomy` (proportions and the skin's distance field), :mod:`geometry`
(topology, rays, mouth pocket, eyeballs), :mod:`rig` (joints, weights, pose correctives),
:mod:`blendshapes`, :mod:`landmarks`, :mod:`masks`, :mod:`uv`, :mod:`albedo`,
:mod:`builder` (all arrays) and :mod:`writer` (files and the cache).
"""

from __future__ import annotations

from flamefit.flame.demo_head.blendshapes import EXPRESSION_COMPONENTS, IDENTITY_COMPONENTS
from flamefit.flame.demo_head.builder import GENERATOR_VERSION, MODEL_NAME, DemoHead, build_demo_head
from flamefit.flame.demo_head.writer import FILE_NAMES, default_cache_dir, ensure_demo_head, write_demo_head

__all__ = [
    "EXPRESSION_COMPONENTS", "FILE_NAMES", "GENERATOR_VERSION", "IDENTITY_COMPONENTS", "MODEL_NAME",
    "DemoHead", "build_demo_head", "default_cache_dir", "ensure_demo_head", "write_demo_head",
]
