"""The image regressor: a CNN from the fit's face crop to the fit's parameters, trained on
synthetic renders of the model in use and/or on fit results, for feed-forward reconstruction and
as the fit's starting point.

The CNN, its output layout and its loader are :mod:`flamefit.fitting.image_regressor` (the fit
uses it on steep profiles). Modules here:
:mod:`~flamefit.regressor.synthetic_faces` (training faces rendered on the training device),
:mod:`~flamefit.regressor.fit_labels` (fit results as pseudo-labels),
:mod:`~flamefit.regressor.training` (``flamefit train-regressor``), :mod:`~flamefit.regressor.regress`
(``flamefit regress``), :mod:`~flamefit.regressor.options` and :mod:`~flamefit.regressor.commands`.
The main entry points are importable from here lazily: ``train_regressor``, ``TrainingSettings``,
``regress_images``, ``RegressOptions``, ``load_image_regressor``, ``ImageRegressor``.
"""

from __future__ import annotations

from flamefit.utils import lazy_getattr

_EXPORTS = {
    "train_regressor": "flamefit.regressor.training",
    "load_image_regressor": "flamefit.fitting.image_regressor",
    "TrainingSettings": "flamefit.regressor.options",
    "RegressOptions": "flamefit.regressor.options",
    "regress_images": "flamefit.regressor.regress",
    "ImageRegressor": "flamefit.fitting.image_regressor",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flamefit.regressor", _EXPORTS)
