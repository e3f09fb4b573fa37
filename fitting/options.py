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
#: Steps (rigid, full) from the landmark regressor's start; chosen with
#: ``benchmarks/bench_init.py`` (why: :class:`FitOptions`).
REGRESSOR_STEPS = (50, 300)


@dataclass
class FitOptions:
    """Options of :func:`flamefit.fitting.batch.fit_images` (the CLI's flags).

    The default schedule follows the start (:func:`default_steps`). From zero it is the
    reference implementation's 200 rigid + 800 full steps, so ``--init zero`` fits as flamefit
    always did. From the landmark regressor it is 50 + 300, chosen with
    ``benchmarks/bench_init.py`` (figures in ``benchmarks/README.md``, "Initialisation"): on 195
    detected renders of the open model (a third at yaw 45-90) the regressor's start (3.6 degrees
    median rotation error) needs no long rigid stage, and with 50 + 800 it ends where the zero
    start's 200 + 800 ends (2.95 vs 2.94 % of the inter-ocular distance from the detected points,
    2.76 vs 2.78 mm face error) but reaches that only near step 850 of 1000: the last tenths of
    a pixel come from the full stage fitting shape and expression to the detections, whatever the
    start. Those tenths fit the detector's errors: 50 + 300 ends 0.3 % IOD further from the
    detected points but nearer the true ones (3.13 vs 3.21 % of the face box) with a smaller face
    error (2.55 vs 2.78 mm), in 35 % of the steps, and on the shared photos 0.1 % IOD further
    (2.11 vs 1.88 % median) in a third of the time (``flamefit fit``: 17.4 s median per photo
    on two CPU cores that other jobs were using; 200 + 800 takes about three times as long).
    The short schedule does about as well from zero (photos: 0.01 % IOD apart; 24 renders: 4.01 vs 3.84 %
    from the detections, the same distance to the true points, 2.44 vs 2.40 mm): the saving is
    the schedule's. The regressor's start stays the default because it is no worse on the
    photos, a little nearer the detections on synthetic turned heads, and puts a fit near its
    answer from the first step (``--iters 0,N``, the web page's live view).

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
