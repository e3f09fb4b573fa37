"""Photometric fitting: inputs (images, detection, crops, masks), losses, the staged optimiser,
results I/O and the ``flamefit`` command-line interface.

    from fitting import fit_images, FitOptions
    summary = fit_images(["photo.jpg"], "results", FitOptions(device="cuda", batch_size=16))

The public names are imported lazily so that ``import fitting`` stays cheap.
"""

from __future__ import annotations

from flame.lazy import lazy_getattr

_EXPORTS = {
    "fit_images": "fitting.fit_images",
    "FitOptions": "fitting.fit_images",
    "FitSummary": "fitting.fit_images",
    "fit_batch": "fitting.optimizer",
    "FitConfig": "fitting.optimizer",
    "FitOutcome": "fitting.optimizer",
    "FitParameters": "fitting.parameters",
    "load_initialisation": "fitting.parameters",
    "HeadScene": "fitting.scene",
    "prepare_image": "fitting.prepare",
    "detect_face": "fitting.detect",
    "load_image": "fitting.image_io",
    "crop_image": "fitting.crop",
    "skin_probability": "fitting.skin_mask",
    "run_demo": "fitting.demo",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("fitting", _EXPORTS)
