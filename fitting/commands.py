"""The fitting subcommands of ``flamefit``: ``fit``, ``demo``, ``evaluate`` and
``train-landmark-regressor``.

:func:`register` adds them to the ``flamefit`` parser (:mod:`flamefit.cli`); each is a thin
wrapper over :func:`flamefit.fitting.batch.fit_images`, :func:`flamefit.fitting.demo.run_demo`
and :func:`flamefit.fitting.evaluation.evaluate_results`. Defaults come from
:class:`flamefit.fitting.options.FitOptions`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flamefit.fitting.choices import OUTPUT_SETS
from flamefit.fitting.options import REFERENCE_STEPS, REGRESSOR_STEPS, RESULT_STEPS, FitOptions


def fit_options(args: argparse.Namespace) -> FitOptions:
    """The :class:`FitOptions` of parsed ``flamefit fit`` arguments."""
    return FitOptions(
        device=args.device, batch_size=args.batch_size, resolution=args.resolution,
        rigid_steps=args.iters[0] if args.iters else None,
        full_steps=args.iters[1] if args.iters else None, camera=args.camera,
        flame_dir=args.flame_dir, open_model=args.open_model, landmarks=args.landmarks,
        mask=args.mask, init=args.init, shape_prior=args.shape_prior, detector=args.detector,
        image_regressor=args.image_regressor, face_index=args.face,
        texture_space=args.texture_space, texture_offset=args.texture_offset, gif=args.gif,
        outputs=args.outputs,
        overwrite=args.overwrite, on_changed=args.changed_photos,
        backend=args.backend,
    )


def report_summary(summary) -> int:
    """Print a batch's failures (once each) and its summary line; the exit status."""
    for name, reason in summary.failed.items():
        print(f"failed: {name}: {reason}")
    print(summary.line())
    return 1 if summary.failed else 0


def run_fit_job(job) -> int:
    """Run ``job()`` (a batch returning a :class:`~flamefit.fitting.batch.FitSummary`) and print
    its summary; the exit status (130 when Ctrl-C stopped it, after printing what finished)."""
    from flamefit.fitting.batch import FitInterrupted

    try:
        summary = job()
    except FitInterrupted as stop:
        report_summary(stop.summary)
        print("flamefit fit: interrupted; the photos above are finished, the rest are not. Run "
              "the same command again to resume.", file=sys.stderr)
        return 130
    return report_summary(summary)


def cmd_fit(args: argparse.Namespace) -> int:
    from flamefit.fitting.batch import fit_images

    return run_fit_job(lambda: fit_images(args.inputs, args.out, fit_options(args)))


def cmd_demo(args: argparse.Namespace) -> int:
    from flamefit.fitting.demo import run_demo

    summary = run_demo(args.out, flame_dir=args.flame_dir, open_model=args.open_model)
    return 0 if summary.fitted and not summary.failed else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flamefit.fitting.evaluation import EVALUATED, evaluate_results

    evaluation = evaluate_results(args.results, args.truth, args.out, pts_one_based=args.pts_one_based)
    for record in evaluation.records:  # each image not evaluated, once, with its reason
        if record.status != EVALUATED:
            print(f"{record.status}: {record.id}: {record.message}")
    print(evaluation.table())
    print(f"wrote {', '.join(str(p) for p in evaluation.files)}")
    return 0 if evaluation.complete else 1


def cmd_train_landmark_regressor(args: argparse.Namespace) -> int:
    import time

    import torch
    from tqdm import tqdm

    from flamefit.fitting import landmark_regressor as lr
    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.utils import UsageError

    if args.minutes <= 0:
        raise UsageError(f"--minutes must be more than 0, got {args.minutes:g}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    files = select_model(args.flame_dir, open_model=args.open_model)
    scene = HeadScene.from_model_files(files, backend="torch")
    scene.model_file = files.model
    out = args.out or lr.cache_path(model_sha256(files.model))
    started = time.time()
    bar = tqdm(total=round(args.minutes * 60), unit="s", desc=f"calibrating the detector ({files.describe()})")

    def tick(postfix: str) -> None:
        bar.n = min(bar.total, round(time.time() - started))
        bar.set_postfix_str(postfix)
        bar.refresh()

    def calibrating(done: int, count: int) -> None:
        tick(f"render {done}/{count}")

    def training(step: int, seconds: float, loss: float) -> None:
        bar.set_description(f"training ({files.describe()})")
        tick(f"step {step} loss {loss:.4f}")

    regressor, log = lr.train_for_model(scene, minutes=args.minutes, detector=args.detector,
                                        calibration_renders=args.calibration_renders,
                                        log=lambda text: bar.write(text),
                                        calibration_progress=calibrating, progress=training)
    bar.close()
    lr.save_regressor(out, regressor, log)
    print(f"{log.steps[-1] if log.steps else 0} steps in {log.seconds:.0f} s "
          f"(detector errors: {regressor.spec.detector or 'generic noise only'}), final landmark error "
          f"{log.landmark_error[-1] if log.landmark_error else float('nan'):.4f} (crop units); wrote {out}")
    return 0


def register(subparsers, shared) -> None:
    """Add ``fit``, ``demo`` and ``evaluate`` to ``flamefit``'s subparsers (``shared``: the
    option groups of :class:`flamefit.cli.SharedOptions`)."""
    d = FitOptions()
    fit = subparsers.add_parser(
        "fit", help="fit photos (files, folders, globs)",
        description="Fit the head model to every photo: detect the face and its 68 landmarks, "
                    "crop, then optimise pose and camera on landmarks, then shape, expression, "
                    "pose, albedo, SH light and camera on landmarks and pixels. Writes OUT/<id>/ "
                    "per photo, <id> being its path relative to the folder given (params.npz, "
                    "mesh.obj+mtl+png, camera.npz, landmarks.npz, overlay.png, sheet.png, "
                    "report.json) and OUT/summary.csv. Reruns skip photos already done.",
        epilog="Exit status: 0 all done, 1 some photos failed (see OUT/summary.csv), 2 bad usage.",
    )
    fit.add_argument("inputs", nargs="+", help="image files, folders of images (searched "
                     "recursively), or glob patterns")
    fit.add_argument("--out", type=Path, required=True, help="output folder")
    fit.add_argument("--batch-size", type=shared.positive_int, default=d.batch_size,
                     help=f"photos fitted together (use 16-256 on a GPU; default {d.batch_size})")
    fit.add_argument("--resolution", type=shared.resolution(32, 2048), default=d.resolution,
                     help=f"crop size in pixels the fit runs at (default {d.resolution})")
    fit.add_argument("--iters", type=shared.step_counts, default=None,
                     metavar="RIGID,FULL", help=f"steps of the rigid (landmarks) and full stages "
                                                f"(default {REGRESSOR_STEPS[0]},{REGRESSOR_STEPS[1]} "
                                                f"from the landmark regressor's start, "
                                                f"{RESULT_STEPS[0]},{RESULT_STEPS[1]} from flamefit's "
                                                f"own results (--init OUT of regress or fit), "
                                                f"{REFERENCE_STEPS[0]},{REFERENCE_STEPS[1]} from zero "
                                                f"or another tool's output)")
    shared.camera(fit, d.camera)
    inputs = fit.add_argument_group(
        "per-photo inputs", "For one photo, a file; for several, a folder holding <id>.<ext> "
                            "for each photo (<id>: the photo's path relative to the folder given, "
                            "without suffix, e.g. 00000/00001.npy).")
    inputs.add_argument("--landmarks", type=Path, default=None,
                        help="68x2 landmarks (.npy/.txt/.pts, original photo pixels) instead of detection")
    inputs.add_argument("--mask", type=Path, default=None,
                        help="mask image (white = use) the size of the photo (.png/.jpg/.npy); "
                             "limits the photometric term")
    inputs.add_argument("--init", type=Path, default=d.init, metavar="auto|zero|regressor|FILE",
                        help="where the fit starts. auto (default): our landmark regressor's "
                             "prediction when the model has one (the open model's ships; FLAME's "
                             "after train-landmark-regressor), else zero; zero: the mean face, "
                             "frontal; regressor: the landmark regressor (trained first when "
                             "missing); or initial parameters refined by the fit, another tool's output read "
                             "unchanged: a DECA codedict, EMOCA/EMICA output folder, SMIRK dict, "
                             "MICA identity.npy, metrical-tracker/pixel3dmm .frame, VHAP "
                             "tracked_flame_params*.npz, flame-head-tracker <id>.npz, RingNet "
                             "params/<name>.npy, our params.npz, or the OUT folder of flamefit regress "
                             "or fit (refined with a short schedule); the report says which it found. "
                             "FLAME coefficients are dropped unless FLAME is the model in use.")
    fit.add_argument("--shape-prior", type=Path, default=None, metavar="FILE",
                     help="a shape to start from and pull every photo's fit toward (a Gaussian "
                          "prior centred on it instead of 0): MICA's identity.npy or any --init "
                          "file with shape coefficients (FLAME's need FLAME as the model)")
    shared.detector(fit, d.detector)
    fit.add_argument("--image-regressor", type=Path, default=None, metavar="DIR",
                     help="on steep profiles (faces MediaPipe's face mesh doubts) take the 68 "
                          "landmarks and the start from this image regressor, a `flamefit "
                          "train-regressor` output for the model in use (default: the shipped one "
                          "for the open model; other models keep the mesh's points)")
    fit.add_argument("--face", type=int, default=d.face_index, metavar="N",
                     help="which face when a photo shows several: 0 = the largest (default), "
                          "1 = the next largest, ...")
    fit.add_argument("--texture-space", type=Path, default=None,
                     help="albedo space to fit with (FLAME_texture.npz layout), e.g. one built "
                          "by build-texture-space (default: the model folder's)")
    fit.add_argument("--texture-offset", action="store_true",
                     help="also fit a smooth per-texel albedo offset")
    fit.add_argument("--gif", action="store_true", help="also write progress.gif per photo")
    fit.add_argument("--outputs", choices=OUTPUT_SETS, default=d.outputs,
                     help="all: every result file (default); params: the numbers only (params.npz, "
                          "camera.npz, landmarks.npz, report.json), for large datasets where meshes "
                          "and pictures cost more than the fit's share of the host")
    fit.add_argument("--overwrite", action="store_true", help="refit photos already done")
    fit.add_argument("--changed-photos", choices=("refit", "refuse"), default=d.on_changed,
                     help="a photo done before whose file has changed since: refit it (default) "
                          "or refuse (it fails with a message and its old result stays)")
    shared.device(fit, d.device)
    shared.model(fit)
    fit.set_defaults(func=cmd_fit)

    demo = subparsers.add_parser(
        "demo", help="run the main job on the embedded default",
        description="Fit the astronaut photo that ships with scikit-image (with FLAME when "
                    "data/flame holds it, else the open ICT-FaceKit model) and print where the results are.",
    )
    demo.add_argument("--out", type=Path, default=Path("out") / "demo",
                      help="output folder (default: out/demo)")
    shared.model(demo)
    demo.set_defaults(func=cmd_demo)

    evaluate = subparsers.add_parser(
        "evaluate", help="landmark error of fit results against ground-truth annotations",
        description="Measure the 68 detected and fitted landmarks of every result in RESULTS "
                    "against ground truth: NME in % of the inter-ocular distance (outer eye "
                    "corners 36-45, 300-W) and of the box size (sqrt(w*h) of the truth's "
                    "bounding box, AFLW2000-3D), and the fit's own residuals (fitted vs detected) "
                    "per region. Truth files are TRUTH/<id>.npy|.pts|.txt|.mat (<id>: the "
                    "result's photo id, e.g. 00000/00001), else the one file named after the "
                    "photo's stem anywhere under TRUTH. Formats: .npy (68,2|3), iBUG .pts, .txt "
                    "(68 'x y' lines or 136 numbers), AFLW2000-3D .mat (pt3d_68, 3x68). Writes "
                    "per_image.csv, summary.json (means, medians, failure rates at 8 and 10 %, "
                    "AUC up to 8 %) and ced.png, and prints a table.",
        epilog="Exit status: 0 every result evaluated, 1 some were not (no truth file, a bad "
               "truth file, a failed fit: each named, the rest evaluated and written), 2 bad "
               "usage (RESULTS or TRUTH not a folder, no results, no truth file matching any).",
    )
    evaluate.add_argument("results", type=Path, metavar="RESULTS",
                          help="the --out folder of a `flamefit fit` run")
    evaluate.add_argument("--truth", type=Path, required=True, metavar="TRUTH",
                          help="folder of ground-truth 68-point files (searched recursively)")
    evaluate.add_argument("--out", type=Path, default=None, metavar="DIR",
                          help="where the outputs go (default RESULTS/evaluation)")
    evaluate.add_argument("--pts-one-based", action=argparse.BooleanOptionalAction, default=True,
                          help=".pts coordinates count pixels from 1, as 300-W's do: subtract 1 "
                               "to get 0-based pixel indices like flamefit's (default: yes; "
                               "other formats are always read as 0-based)")
    evaluate.set_defaults(func=cmd_evaluate)

    from flamefit.fitting.choices import DETECTORS

    train = subparsers.add_parser(
        "train-landmark-regressor", help="train the landmark regressor of a head model (--init regressor)",
        description="Train the small network that maps a face's 68 detected landmarks to a "
                    "starting point for the fit (global pose, jaw, expression, leading identity, "
                    "camera), on synthetic projections of the model in use only: parameters from "
                    "its priors, yaw up to 90, pitch 45, roll 30 degrees, missing points, and "
                    "the errors of the detector measured on renders of the model (its contour "
                    "follows the outline it sees, its points drift at steep yaw). The open "
                    "model's ships with flamefit; for FLAME it is also trained on first use of "
                    "--init regressor.",
    )
    train.add_argument("--out", type=Path, default=None,
                       help="where the .pt goes (default: the cache, ~/.cache/flamefit/"
                            "landmark_regressors/, where --init regressor looks)")
    train.add_argument("--minutes", type=float, default=9.5,
                       help="wall-clock budget, the detector's calibration included (default 9.5)")
    train.add_argument("--detector", choices=(*DETECTORS, "none"), default="auto",
                       help="the detector whose errors the regressor learns: its points are "
                            "compared with the model's on renders first (at most a quarter of the "
                            "budget); auto: the one `fit` uses by default; none: generic noise only")
    train.add_argument("--calibration-renders", type=int, default=1000, metavar="N",
                       help="renders of the detector's calibration (default 1000)")
    shared.model(train)
    train.set_defaults(func=cmd_train_landmark_regressor)
