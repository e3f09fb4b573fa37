"""Options of ``flamefit serve`` as a dataclass, importable without torch or FastAPI: the command
line takes its defaults from here, and :func:`flamefit.web.app.create_app` takes an instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flamefit.fitting.options import FitOptions, check_schedule

_FIT = FitOptions()

#: Hosts that only this machine can reach; anything else is announced with a warning.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    """What the web server does and how much it accepts.

    Attributes:
        host, port: where uvicorn listens (localhost by default: nobody else can reach it).
        data_dir: where jobs live (``<data_dir>/jobs/<id>/``: the photo, ``job.json``, the
            result folder); finished jobs survive a restart.
        device: torch device of the fits (``"auto"``: CUDA when available).
        workers: fitting threads sharing one model in memory.
        batch_size: photos one worker fits together (queued uploads are batched on a GPU;
            ``0`` means 8 on CUDA and 1 on the CPU).
        queue_size: photos that may wait for a worker; an upload beyond that is refused (503).
        max_upload_bytes: largest accepted upload; bigger ones are cut off while streaming (413).
        max_pixels: largest accepted decoded photo (width x height), checked from the header
            before decoding (413).
        keep_hours: jobs (photo and results) are deleted this many hours after their last change.
        init, rigid_steps, full_steps, resolution, camera, detector, backend, flame_dir,
            open_model: the fit, as in :class:`flamefit.fitting.options.FitOptions` (``init``:
            ``"auto"``, ``"zero"`` or ``"regressor"``; no other tool's files).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("out") / "web"
    device: str = "auto"
    workers: int = 1
    batch_size: int = 0
    queue_size: int = 16
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    keep_hours: float = 24.0
    init: str = str(_FIT.init)
    rigid_steps: int | None = _FIT.rigid_steps
    full_steps: int | None = _FIT.full_steps
    resolution: int = _FIT.resolution
    camera: str = _FIT.camera
    detector: str = _FIT.detector
    backend: str = _FIT.backend
    flame_dir: Path | None = None
    open_model: bool = False

    def check(self) -> None:
        """Raise :class:`flamefit.utils.UsageError` for values the server cannot run with."""
        from flamefit.utils import UsageError

        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be from 0 to 65535, got {self.port}")
        for name in ("workers", "queue_size", "max_upload_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 0:
            raise UsageError(f"--batch-size must be 0 (automatic) or more, got {self.batch_size}")
        if self.keep_hours <= 0:
            raise UsageError(f"--keep-hours must be more than 0, got {self.keep_hours}")
        check_schedule(self.resolution, self.rigid_steps, self.full_steps)
