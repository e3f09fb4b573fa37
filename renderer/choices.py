"""The renderer's named choices, importable without torch (``flamefit --help`` reads them).

* :data:`CAMERA_MODELS`: the camera models of :mod:`flamefit.renderer.camera_models` by name
  (:func:`flamefit.renderer.camera_models.camera_model` builds them; it checks the two agree).
* :data:`BACKENDS`: the rasterisers of :func:`flamefit.renderer.rasterize.rasterize`;
  ``"auto"`` is nvdiffrast on CUDA when it is installed, torch otherwise.
"""

CAMERA_MODELS = ("orthographic", "perspective")
BACKENDS = ("auto", "torch", "nvdiffrast")
