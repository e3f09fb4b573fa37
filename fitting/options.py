"""Options of ``flamefit fit`` as a dataclass, importable without torch: the command line takes
its defaults from here (never retyped), and :func:`flamefit.fitting.batch.fit_images` takes
an instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: ``--init`` keywords: where each photo's fit starts (anything else names files of another tool).
AUTO_INIT, ZERO_INIT, REGRESSOR_INIT = "auto", "zero", "regressor"
INIT_KEYWORDS = (AUTO_INIT, ZERO_INIT, REGRESSOR_INIT)
#: Steps (rigid, full) from a zero start or another tool's output: the reference
#: implementation's schedule.
REFERENCE_STEPS = (200, 800)
#: Steps (rigid, full) from the landmark regressor's start; chosen in
#: ``benchmarks/bench_init.py`` (see :class:`FitOptions`).
REGRESSOR_STEPS = (50, 300)


@dataclass
class FitOptions:
    """Options of :func:`flamefit.fitting.batch.fit_images` (the CLI's flags).

    Attributes:
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``) or ``"auto"`` (CUDA when
            available).
        batch_size: photos fitted together.
        resolution: side of the square face crop the fit runs at, pixels.
        rigid_steps, full_steps: optimiser steps of the two stages; None: the start's default
            (:func:`default_steps`).
        camera: a name of :data:`flamefit.renderer.choices.CAMERA_MODELS`.
        flame_dir, open_model: which head model (:func:`flamefit.flame.selection.select_model`).
        landmarks, mask: per-photo inputs: a folder of ``<id>.*`` files (for a single photo
            also one file); see :mod:`flamefit.fitting.plan`.
        init: where each fit starts. ``"auto"`` (default): the landmark regressor's prediction
            when the model has one ready (the open model's ships; FLAME's once trained and
            cached), else zero; ``"regressor"``: the landmark regressor (trained on first use
            when missing); ``"zero"``: the mean face, frontal, with a camera from the
            landmarks; a file or folder: other regressors' outputs read unchanged
            (:mod:`flamefit.fitting.regressor_outputs`), as the per-photo inputs above.
        shape_prior: a file with shape coefficients (MICA's ``identity.npy``, any ``init``
            format): every photo's shape starts there and is pulled toward it (a Gaussian prior
            centred on it instead of 0).
        detector: a name of :data:`flamefit.fitting.choices.DETECTORS`.
        face_index: which face when a photo shows several (0 = the largest).
        texture_space: an albedo space (``FLAME_texture.npz`` layout) instead of the model's.
        texture_offset: also fit a smooth per-texel albedo offset.
        gif: also write ``progress.gif`` per photo.
        outputs: which result files: ``"all"`` or ``"params"`` (the numbers only; see
            :data:`flamefit.fitting.choices.OUTPUT_SETS`).
        overwrite: refit photos whose results are done.
        on_changed: a photo whose recorded content hash differs from the file's now:
            ``"refit"`` it (and say so) or ``"refuse"`` (fail it with a message).
        backend: a name of :data:`flamefit.renderer.choices.BACKENDS`.
        n_shape, n_expression, n_texture: model components fitted.
    """

    device: str = "auto"
    batch_size: int = 1
    resolution: int = 224
    rigid_steps: int | None = None
    full_steps: int | None = None
    camera: str = "orthographic"
    flame_dir: Path | None = None
    open_model: bool = False
    landmarks: Path | None = None
    mask: Path | None = None
    init: Path | str | None = AUTO_INIT
    shape_prior: Path | None = None
    detector: str = "auto"
    face_index: int = 0
    texture_space: Path | None = None
    texture_offset: bool = False
    gif: bool = False
    outputs: str = "all"
    overwrite: bool = False
    on_changed: str = "refit"
    backend: str = "auto"
    n_shape: int = 100
    n_expression: int = 50
    n_texture: int = 50


def init_keyword(init: Path | str | None) -> str | None:
    """``init``'s keyword (:data:`INIT_KEYWORDS`; None counts as ``"zero"``), or None when it
    names files."""
    if init is None:
        return ZERO_INIT
    return str(init) if str(init) in INIT_KEYWORDS else None


def default_steps(start: str) -> tuple[int, int]:
    """The default (rigid, full) steps of a run whose fits start from ``start`` (``"regressor"``,
    ``"zero"``, ``"file"``): :data:`REGRESSOR_STEPS` or :data:`REFERENCE_STEPS`."""
    return REGRESSOR_STEPS if start == REGRESSOR_INIT else REFERENCE_STEPS


def resolve_steps(rigid_steps: int | None, full_steps: int | None, start: str) -> tuple[int, int]:
    """The steps a run uses: those given, the start's default (:func:`default_steps`) for None."""
    rigid, full = default_steps(start)
    return (rigid if rigid_steps is None else rigid_steps, full if full_steps is None else full_steps)


def check_schedule(resolution: int, rigid_steps: int | None, full_steps: int | None) -> None:
    """Refuse a crop side or step counts no fit can run with (``flamefit fit``, ``serve``);
    None (the start's default) passes.

    Raises:
        flamefit.utils.UsageError: one line naming the option and its range.
    """
    from flamefit.utils import UsageError

    if not 32 <= resolution <= 2048:
        raise UsageError(f"--resolution must be from 32 to 2048 pixels, got {resolution}")
    if rigid_steps is None and full_steps is None:
        return
    rigid_steps, full_steps = resolve_steps(rigid_steps, full_steps, ZERO_INIT)
    if rigid_steps < 0 or full_steps < 0 or rigid_steps + full_steps == 0:
        raise UsageError(f"--iters must be two step counts, each 0 or more and not both 0; got "
                         f"{rigid_steps},{full_steps}")
