"""Options of ``flamefit regress`` and ``flamefit train-regressor``, importable without torch (the
command line takes its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path




@dataclass
class RegressOptions:
    """Options of :func:`flamefit.regressor.regress.regress_images`.

    Attributes:
        model: the ``flamefit train-regressor`` output folder (or its ``regressor.pt``); None:
            the shipped one (:data:`flamefit.fitting.options.SHIPPED_IMAGE_REGRESSOR_DIR`, for the open model).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``...
        batch_size: crops per network pass (detection runs photo by photo before).
        detector, face_index, landmarks: as ``flamefit fit``'s (the crop is the fit's).
        flame_dir, open_model: the head model; it must be the one the regressor was trained for.
        overwrite, on_changed: as ``flamefit fit``'s (a rerun skips done photos).
        backend: rasteriser for the overlays.
        outputs: ``"all"`` (the fit's result files) or ``"params"`` (parameters, camera,
            landmarks and report only: for large batches, where meshes and pictures cost more
            than the network; :data:`flamefit.fitting.outputs.OUTPUT_SETS`).
    """

    model: Path | None = None
    device: str = "auto"
    batch_size: int = 32
    detector: str = "auto"
    face_index: int = 0
    landmarks: Path | None = None
    flame_dir: Path | None = None
    open_model: bool = False
    overwrite: bool = False
    on_changed: str = "refit"
    backend: str = "auto"
    outputs: str = "all"


@dataclass
class TrainingSettings:
    """Settings of a training run (``flamefit train-regressor``'s flags).

    Attributes:
        steps: optimiser steps (the learning rate follows a cosine over them).
        batch_size: crops per step.
        learning_rate: AdamW's peak rate (after a 2 % warm-up).
        resolution: crop side (pixels); the fit's default is 224.
        width: channels of the encoder's first stage (:func:`flamefit.fitting.image_regressor.encoder`).
        synthetic: draw synthetic renders.
        from_fits: a ``flamefit fit`` output folder whose results are pseudo-labels, or None.
        fits_fraction: with both sources, the share of each batch taken from the fits.
        backgrounds: a folder of photos to cut backgrounds from (default: scikit-image's).
        occluder_fraction: share of synthetic faces with an occluder.
        max_yaw: widest synthetic yaw, degrees.
        validation_size: synthetic validation renders (fixed).
        validation_every, checkpoint_every: in steps.
        seed: every draw derives from it.
        device: ``auto``, ``cpu``, ``cuda``...
        precision: ``auto`` (bfloat16 autocast on CUDA, float32 on the CPU), ``bf16`` or ``fp32``.
        minutes: stop (with a checkpoint, resumable) after this much wall time; None: no limit.
    """

    steps: int = 20000
    batch_size: int = 64
    learning_rate: float = 1e-3
    resolution: int = 224
    width: int = 32
    synthetic: bool = True
    from_fits: str | None = None
    fits_fraction: float = 0.5
    backgrounds: str | None = None
    occluder_fraction: float = 0.25
    max_yaw: float = 90.0
    validation_size: int = 256
    validation_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    minutes: float | None = None

    #: settings that may change between a run and its resumption
    RESUMABLE_CHANGES = ("validation_every", "checkpoint_every", "device", "precision", "minutes")

    def identity(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.RESUMABLE_CHANGES}
