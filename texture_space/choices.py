"""The texture-space builder's named choices, importable without torch.

* :data:`COMPLETION_METHODS`: how :func:`flamefit.texture_space.completion.complete_textures`
  fills unseen texels before the PCA.
* :data:`BOOTSTRAPS`: the albedo that round 0 fits with when no ``init_space`` is given.
"""

COMPLETION_METHODS = ("mean", "symmetry", "pca", "inpaint", "combined")
BOOTSTRAPS = ("constant", "model")
