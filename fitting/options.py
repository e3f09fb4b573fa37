"""Options of ``flamefit fit`` as a dataclass, importable without torch: the command line takes
its defaults from here (never retyped), and :func:`flamefit.fitting.batch.fit_images` takes
an instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: ``--init`` keywords: where each photo's fit starts (anything else names files of another tool).
AUTO_INIT, ZERO_INIT, REGRESSOR_INIT = "auto", "zero", "regressor"
INIT_KEYWORDS = (AUTO_INIT, ZERO_INIT, REGRESSOR_INIT)

#: The image regressor trained for the open model (ICT-FaceKit Light) that ships with flamefit
#: (``regressor.pt``, ``training.json``, ``training.png``): ``flamefit regress``'s default, and the
#: fit's source of landmarks on steep profiles (:mod:`flamefit.fitting.profile_landmarks`).
SHIPPED_IMAGE_REGRESSOR_DIR = Path(__file__).resolve().parent / "open_model_image_regressor"

#: Starts named by files: flamefit's own results (``flamefit regress`` or an earlier fit) and
#: other tools' outputs.
RESULT_INIT, FILE_INIT = "result", "file"


@dataclass(frozen=True)
class Schedule:
    """Steps and learning rate of a fit's two stages (the fields of
    :class:`flamefit.fitting.optimizer.FitConfig` of the same names).

    Attributes:
        rigid_steps, full_steps: Adam steps of the rigid and the full stage.
        full_lr: the full stage's learning rate at its first step.
        final_lr_fraction: each stage's learning rate at its last step as a fraction of its
            first (a half cosine in between; 1: constant).
        warmup_steps: steps over which each stage's learning rate rises linearly to its
            first value (0: none).
        shape_lr_factor, expression_lr_factor: the full stage's learning rate for the identity
            and expression coefficients, as multiples of ``full_lr``.
        start_rotation_prior: weight of a prior that keeps the head's rotation near the start's
            (0: none); for starts that are estimates of the pose (a regressor's).
    """

    rigid_steps: int
    full_steps: int
    full_lr: float = 0.005
    final_lr_fraction: float = 1.0
    warmup_steps: int = 0
    shape_lr_factor: float = 1.0
    expression_lr_factor: float = 1.0
    start_rotation_prior: float = 0.0

    @property
    def steps(self) -> tuple[int, int]:
        return self.rigid_steps, self.full_steps

    def config_fields(self) -> dict:
        """The :class:`flamefit.fitting.optimizer.FitConfig` fields this schedule sets."""
        from dataclasses import asdict

        return asdict(self)


#: From zero or another tool's output: the reference implementation's schedule (Adam at a
#: constant 0.005, 200 + 800 steps).
REFERENCE_SCHEDULE = Schedule(200, 800)
#: From the landmark regressor's start; chosen with ``benchmarks/bench_init.py`` (why:
#: :class:`FitOptions`).
REGRESSOR_SCHEDULE = Schedule(50, 200, start_rotation_prior=1.0)
#: From a flamefit result (``flamefit regress``'s image regressor, or an earlier fit): no rigid
#: stage and a shorter full stage at a higher learning rate that warms up and decays, the
#: identity and expression coefficients faster; chosen with ``benchmarks/sweep_schedules.py
#: image`` (why: :class:`FitOptions`; figures in ``benchmarks/README.md``, "Even camera steps").
RESULT_SCHEDULE = Schedule(0, 250, full_lr=0.01, final_lr_fraction=0.05, warmup_steps=20,
                           shape_lr_factor=8.0, expression_lr_factor=4.0)
REFERENCE_STEPS = REFERENCE_SCHEDULE.steps
REGRESSOR_STEPS = REGRESSOR_SCHEDULE.steps
RESULT_STEPS = RESULT_SCHEDULE.steps


@dataclass
class FitOptions:
    """Options of :func:`flamefit.fitting.batch.fit_images` (the CLI's flags).

    The default schedule follows the start (:func:`default_schedule`). From zero or another
    tool's output it is the reference implementation's 200 rigid + 800 full steps (Adam at a
    constant 0.005); a zero start is turned onto the landmarks in closed form first
    (:mod:`flamefit.fitting.landmark_pose`).

    From the landmark regressor it is 50 + 200 (a quarter of the steps), chosen with
    ``benchmarks/bench_init.py`` (figures in ``benchmarks/README.md``, "Initialisation"). On 195
    detected renders of the open model (a third at yaw 45-90; H200) the fits' last hundreds of
    steps only fit the detector's errors: 50 + 200 from the regressor ends further from the
    detected points (3.45 vs 2.94 % of the inter-ocular distance) but nearer the true ones
    (3.07 vs 3.21 % of the face box; 97 % of the renders at or below the zero start's final
    distance to the truth) with a smaller face error (2.48 vs 2.78 mm). On 16 of them on the CPU,
    a short schedule from zero (50 + 300) ends with twice the head-rotation error of the
    regressor's start (15.5 vs 7.4 degrees median; 8 vs 3 renders over 15 degrees): the
    regressor's start is what makes a short schedule safe. Photos: see
    ``benchmarks/README.md``.

    The regressor's schedule also keeps the head's rotation near the start's
    (``start_rotation_prior`` 1.0; :class:`flamefit.fitting.optimizer.FitConfig`). With shape and
    expression free the points fix the rotation only loosely (a render's exact points are
    matched to 0.2 px by a head turned 7 degrees from the truth), so without it the fits
    followed the detector's bias at steep yaw: on 65 renders at yaw 45-90 (CPU,
    ``bench_init.py --min-yaw 45``) they ended 6.25 degrees (median) from the true rotation,
    further than their start (4.17), with 10 over 15 degrees like the zero start's. With it:
    3.75 degrees and 5 over 15 (zero: 6.75, 10); on 40 renders under 45 degrees 4.10 -> 3.36,
    with slightly lower true-point and face errors; weights 0.3 and 3 did worse (8 over 15;
    4.15 degrees). The price: on the nine photos the distance to MediaPipe's points rose from
    2.05 to 2.10 % IOD (median), and a start more than about 10 degrees off is only partly
    corrected, even by exact points.

    From flamefit's own results (``--init OUT`` of ``flamefit regress`` or of an earlier fit)
    it is 0 + 250 at a learning rate of 0.01 that rises over 20 steps and decays to 5 % of it,
    with the identity and expression coefficients at 8 and 4 times that rate
    (:data:`RESULT_SCHEDULE`), chosen with ``benchmarks/sweep_schedules.py image``: on 48
    held-out renders (CPU, the true landmarks as targets) it ends 0.355 px from them (median)
    where the zero start's 1000 steps end at 0.397, with a face error of 1.27 vs 1.30 mm, and
    reaches the zero start's final error after 140 steps (median; 42 of 48 renders reach it
    within the 250).
    Without the factors (0.02, warm-up, even camera steps) it ended at 0.451 px and 4 renders
    reached; the factors are not used from zero or the landmark regressor, where the pose may
    still be wrong: from zero, a faster identity locked a mirrored rigid pose in (a render at
    yaw 66 degrees ended 11.5 px off with them, 0.55 px without; measured before the zero
    start's closed-form rotation, not since).

    Attributes:
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``) or ``"auto"`` (CUDA when
            available).
        batch_size: photos fitted together.
        resolution: side of the square face crop the fit runs at, pixels.
        rigid_steps, full_steps: optimiser steps of the two stages; None: the start's default
            (:func:`default_schedule`, whose learning rate the run keeps either way).
        camera: a name of :data:`flamefit.renderer.choices.CAMERA_MODELS`.
        flame_dir, open_model: which head model (:func:`flamefit.flame.selection.select_model`).
        landmarks, mask: per-photo inputs: a folder of ``<id>.*`` files (for a single photo
            also one file); see :mod:`flamefit.fitting.plan`.
        init: where each fit starts. ``"auto"`` (default): the landmark regressor's prediction
            when the model has one ready (the open model's ships; FLAME's once trained and
            cached), else zero; ``"regressor"``: the landmark regressor (trained on first use
            when missing); ``"zero"``: the mean face, turned and framed onto the
            landmarks in closed form (:mod:`flamefit.fitting.landmark_pose`); a file or folder: other regressors' outputs read unchanged
            (:mod:`flamefit.fitting.regressor_outputs`), as the per-photo inputs above, or
            flamefit's own results (``params.npz``; the ``OUT`` of ``regress`` or ``fit``).
        shape_prior: a file with shape coefficients (MICA's ``identity.npy``, any ``init``
            format): every photo's shape starts there and is pulled toward it (a Gaussian prior
            centred on it instead of 0).
        detector: a name of :data:`flamefit.fitting.choices.DETECTORS`.
        image_regressor: the image regressor whose landmarks and start replace the face mesh's
            on steep profiles (:mod:`flamefit.fitting.profile_landmarks`): a ``flamefit
            train-regressor`` output folder for the model in use; None: the shipped one when it
            was trained for the model (the open model), else the mesh's points.
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
    image_regressor: Path | None = None
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


def default_schedule(start: str) -> Schedule:
    """The default schedule of a run whose fits start from ``start`` (``"regressor"``,
    ``"result"``, ``"zero"``, ``"file"``)."""
    return {REGRESSOR_INIT: REGRESSOR_SCHEDULE, RESULT_INIT: RESULT_SCHEDULE}.get(start, REFERENCE_SCHEDULE)


def default_steps(start: str) -> tuple[int, int]:
    """The default (rigid, full) steps of a run whose fits start from ``start``
    (:func:`default_schedule`)."""
    return default_schedule(start).steps


def resolve_schedule(rigid_steps: int | None, full_steps: int | None, start: str) -> Schedule:
    """The schedule a run uses: the start's (:func:`default_schedule`), with the steps given
    (None: the start's)."""
    from dataclasses import replace

    schedule = default_schedule(start)
    return replace(schedule, rigid_steps=schedule.rigid_steps if rigid_steps is None else rigid_steps,
                   full_steps=schedule.full_steps if full_steps is None else full_steps)


def resolve_steps(rigid_steps: int | None, full_steps: int | None, start: str) -> tuple[int, int]:
    """The steps a run uses: those given, the start's default (:func:`default_steps`) for None."""
    return resolve_schedule(rigid_steps, full_steps, start).steps


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
