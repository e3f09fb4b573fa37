"""Photometric fitting: inputs (images, detection, crops, masks), losses, the staged optimiser,
results I/O and the ``flamefit`` command-line interface.

    from flamefit.fitting import fit_images, FitOptions
    summary = fit_images(["photo.jpg"], "results", FitOptions(device="cuda", batch_size=16))

The public names are imported lazily so that ``import fitting`` stays cheap.
"""

from __future__ import annotations

from flamefit.utils import lazy_getattr

_EXPORTS = {
    "fit_images": "flamefit.fitting.batch",
    "FitOptions": "flamefit.fitting.batch",
    "FitSummary": "flamefit.fitting.batch",
    "fit_batch": "flamefit.fitting.optimizer",
    "FitConfig": "flamefit.fitting.optimizer",
    "FitOutcome": "flamefit.fitting.optimizer",
    "FitParameters": "flamefit.fitting.parameters",
    "load_initialisation": "flamefit.fitting.parameters",
    "HeadScene": "flamefit.fitting.scene",
    "prepare_image": "flamefit.fitting.prepare",
    "detect_face": "flamefit.fitting.detect",
    "load_image": "flamefit.fitting.image_io",
    "crop_image": "flamefit.fitting.crop",
    "skin_probability": "flamefit.fitting.skin_mask",
    "run_demo": "flamefit.fitting.demo",
    "evaluate_results": "flamefit.fitting.evaluation",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flamefit.fitting", _EXPORTS)
