"""``flamefit serve``: the web page. :func:`register` adds it to the ``flamefit`` parser; it wraps
:func:`serve`, which builds :func:`flamefit.web.app.create_app` and runs it with uvicorn.
Defaults come from :class:`flamefit.web.options.ServeOptions`; nothing here imports torch or
FastAPI until the command runs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flamefit.fitting.options import INIT_KEYWORDS, REFERENCE_STEPS, REGRESSOR_STEPS
from flamefit.web.options import LOCAL_HOSTS, ServeOptions

log = logging.getLogger("flamefit.web")


def serve(options: ServeOptions) -> None:
    """Run the server until Ctrl-C.

    Raises:
        UsageError: the ``web`` extra is not installed, or an option is out of range.
    """
    from flamefit.utils import UsageError

    options.check()
    try:
        import uvicorn

        from flamefit.web.app import create_app
    except ImportError as missing:
        raise UsageError(f"flamefit serve needs the web extra ({missing.name} is missing): "
                         "pip install 'flamefit[web]'") from None
    if options.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this machine can upload photos and "
                    "read results whose link they have", options.host)
    app = create_app(options)
    log.info("open http://%s:%d/ in a browser (Ctrl-C stops the server)",
             f"[{options.host}]" if ":" in options.host else options.host, options.port)
    uvicorn.run(app, host=options.host, port=options.port, access_log=False, log_config=None,
                timeout_graceful_shutdown=5)


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """The :class:`ServeOptions` of parsed ``flamefit serve`` arguments."""
    return ServeOptions(
        host=args.host, port=args.port, data_dir=args.data_dir, device=args.device,
        workers=args.workers, batch_size=args.batch_size, queue_size=args.queue_size,
        max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6),
        keep_hours=args.keep_hours, init=args.init, rigid_steps=args.iters[0] if args.iters else None,
        full_steps=args.iters[1] if args.iters else None,
        resolution=args.resolution, camera=args.camera, detector=args.detector,
        backend=args.backend, flame_dir=args.flame_dir, open_model=args.open_model,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    serve(serve_options(args))
    return 0


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def register(subparsers, shared) -> None:
    """Add ``serve`` to ``flamefit``'s subparsers (``shared``: :class:`flamefit.cli.SharedOptions`)."""
    d = ServeOptions()
    serve_parser = subparsers.add_parser(
        "serve", help="the web page: upload a photo, watch the fit, turn the head, download it",
        description="Serve a web page where a photo is uploaded, fitted with live progress, shown "
                    "as a textured 3D head (rotate, zoom) over its photo, and downloaded (GLB, "
                    "OBJ+MTL+PNG, params.npz, camera.npz). Needs the web extra: "
                    "pip install 'flamefit[web]'. Listens on this machine only unless --host says "
                    "otherwise.",
    )
    serve_parser.add_argument("--host", default=d.host,
                              help=f"address to listen on (default {d.host}: this machine only; "
                                   "0.0.0.0 for every network interface)")
    serve_parser.add_argument("--port", type=int, default=d.port, help=f"TCP port (default {d.port})")
    serve_parser.add_argument("--data-dir", type=Path, default=d.data_dir,
                              help=f"where uploads and results are kept; a restart serves them "
                                   f"again (default {d.data_dir})")
    serve_parser.add_argument("--workers", type=shared.positive_int, default=d.workers,
                              help=f"fits running at once, sharing one model (default {d.workers})")
    serve_parser.add_argument("--batch-size", type=int, default=d.batch_size,
                              help="queued photos one worker fits together (default 0: 8 on a GPU, "
                                   "1 on the CPU)")
    serve_parser.add_argument("--queue-size", type=shared.positive_int, default=d.queue_size,
                              help=f"photos that may wait; more uploads are refused until there "
                                   f"is room (default {d.queue_size})")
    serve_parser.add_argument("--max-upload-mb", type=_positive_number,
                              default=d.max_upload_bytes / 2**20,
                              help=f"largest upload in MiB (default {d.max_upload_bytes / 2**20:g})")
    serve_parser.add_argument("--max-megapixels", type=_positive_number, default=d.max_pixels / 1e6,
                              help=f"largest photo in megapixels (default {d.max_pixels / 1e6:g})")
    serve_parser.add_argument("--keep-hours", type=_positive_number, default=d.keep_hours,
                              help=f"jobs are deleted this long after their last change "
                                   f"(default {d.keep_hours:g})")
    serve_parser.add_argument("--init", choices=INIT_KEYWORDS, default=d.init,
                              help="where each fit starts: auto (default) the landmark regressor's "
                                   "prediction when the model has one, else zero; as `flamefit fit "
                                   "--init`")
    serve_parser.add_argument("--iters", type=shared.step_counts, default=None, metavar="RIGID,FULL",
                              help=f"steps of the two fitting stages (default {REGRESSOR_STEPS[0]},"
                                   f"{REGRESSOR_STEPS[1]} from the landmark regressor's start, "
                                   f"{REFERENCE_STEPS[0]},{REFERENCE_STEPS[1]} from zero)")
    serve_parser.add_argument("--resolution", type=shared.resolution(32, 2048), default=d.resolution,
                              help=f"crop size in pixels the fit runs at (default {d.resolution})")
    shared.camera(serve_parser, d.camera)
    shared.detector(serve_parser, d.detector)
    shared.device(serve_parser, d.device)
    shared.model(serve_parser)
    serve_parser.set_defaults(func=cmd_serve)
