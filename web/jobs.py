"""The server's jobs: one folder per uploaded photo, named by an unguessable id, kept on disk.

``<data_dir>/jobs/<id>/`` holds

* ``photo.<ext>``: the upload (the extension from its sniffed type, never from its name);
* ``job.json``: the job's state (:class:`Job`), rewritten atomically at every change of state;
* ``result/``: the fit's result folder (:mod:`flamefit.fitting.results`) plus ``viewer.json``
  (landmarks for the page) and, once asked for, ``mesh.zip``.

Ids are :func:`secrets.token_urlsafe` strings (128 random bits); every lookup checks the id's
form before it touches the disk, so no request can name a path. A restart reloads every job:
finished ones are served again, unfinished ones are queued again. Jobs are deleted
``keep_hours`` after their last change (:meth:`JobStore.expire`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flamefit.utils import write_json

log = logging.getLogger("flamefit.web")

#: Characters of :func:`secrets.token_urlsafe(16)`: 22 of ``A-Z a-z 0-9 - _``.
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
JOB_FILE = "job.json"
RESULT_DIR = "result"

CHOOSE, QUEUED, RUNNING, DONE, FAILED = "choose", "queued", "running", "done", "failed"
STATES = (CHOOSE, QUEUED, RUNNING, DONE, FAILED)
FINISHED = (DONE, FAILED)


@dataclass
class Job:
    """One uploaded photo and what became of it.

    Attributes:
        id: the job's id (its folder's name).
        state: one of :data:`STATES`: ``choose`` (several faces: waiting for the visitor's pick),
            ``queued``, ``running``, ``done``, ``failed``.
        created, updated: Unix times, seconds.
        filename: the uploaded file's name, for display only.
        photo: the stored photo's file name inside the job folder.
        media_type: its sniffed type (``image/jpeg`` ...).
        image_size: ``[width, height]`` of the photo, pixels.
        faces: detected faces, largest first: ``{"box": [x0, y0, x1, y1]}`` in the photo's
            pixels (origin top-left, x right, y down).
        face: the face fitted (index into ``faces``), once chosen.
        progress: ``stage`` (``waiting``, ``preparing``, ``rigid``, ``full``, ``writing``),
            ``step``, ``steps`` and ``landmark_error_percent_iod`` (of the current parameters).
        error: the reason a failed job failed, in plain words.
        result: for a done job: landmark error, seconds, model and device.
        version: bumped at every change (not stored); the event stream sends on change.
    """

    id: str
    state: str
    created: float
    updated: float
    filename: str
    photo: str
    media_type: str
    image_size: list[int]
    faces: list[dict] = field(default_factory=list)
    face: int | None = None
    progress: dict = field(default_factory=dict)
    error: str | None = None
    result: dict | None = None
    version: int = 0

    def public(self) -> dict:
        """What the page is told (everything but the stored file's name)."""
        data = asdict(self)
        data.pop("photo")
        return data


def new_job_id() -> str:
    """A fresh unguessable id (128 random bits)."""
    return secrets.token_urlsafe(16)


class JobStore:
    """Jobs in memory and on disk under ``root`` (``<data_dir>/jobs``); thread-safe."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def folder(self, job_id: str) -> Path:
        """The folder of a job id of the right form (raises ValueError for any other string)."""
        if not JOB_ID.fullmatch(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def new_folder(self) -> tuple[str, Path]:
        """Reserve a fresh id and create its (empty) folder."""
        while True:
            job_id = new_job_id()
            folder = self.folder(job_id)
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            return job_id, folder

    def add(self, job: Job) -> Job:
        """Register a new job and write its ``job.json``."""
        with self._lock:
            self._jobs[job.id] = job
            self._write(job)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job of that id, or None (also for strings that are not ids)."""
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def update(self, job_id: str, persist: bool = True, **changes) -> Job | None:
        """Change fields of a job (bumping its version), writing ``job.json`` when ``persist``;
        None when the job is gone (expired meanwhile)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            for key, value in changes.items():
                if not hasattr(job, key) or key in ("id", "version"):
                    raise AttributeError(f"Job has no field {key!r} to change")
                setattr(job, key, value)
            job.updated = time.time()
            job.version += 1
            if persist:
                self._write(job)
            return job

    def snapshot(self, job_id: str) -> tuple[int, dict] | None:
        """``(version, public fields)`` of a job read together, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else (job.version, job.public())

    def discard(self, job_id: str) -> None:
        """Forget a job and delete its folder (a refused upload, an expired job)."""
        with self._lock:
            self._jobs.pop(job_id, None)
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def load(self) -> list[Job]:
        """Read every ``job.json`` under the root (at start-up). Jobs that were queued or
        running when the server stopped are set back to ``queued`` and returned, for the caller
        to queue again; unreadable folders are left alone and logged."""
        unfinished = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not JOB_ID.fullmatch(folder.name):
                continue
            try:
                data = json.loads((folder / JOB_FILE).read_text())
                data.pop("version", None)
                job = Job(**data)
            except (OSError, ValueError, TypeError) as error:
                log.warning("job folder %s: unreadable %s (%s); left alone", folder.name, JOB_FILE, error)
                continue
            if job.id != folder.name or job.state not in STATES:
                log.warning("job folder %s: inconsistent %s; left alone", folder.name, JOB_FILE)
                continue
            if job.state in (QUEUED, RUNNING):
                job.state, job.progress = QUEUED, {"stage": "waiting"}
                unfinished.append(job)
            with self._lock:
                self._jobs[job.id] = job
        return unfinished

    def expire(self, keep_seconds: float, now: float | None = None) -> list[str]:
        """Delete jobs unchanged for ``keep_seconds`` that no worker holds (not queued or
        running); their ids."""
        now = time.time() if now is None else now
        with self._lock:
            old = [job.id for job in self._jobs.values()
                   if job.state not in (QUEUED, RUNNING) and now - job.updated > keep_seconds]
        for job_id in old:
            self.discard(job_id)
        return old

    def count(self, *states: str) -> int:
        """How many jobs are in any of ``states``."""
        with self._lock:
            return sum(job.state in states for job in self._jobs.values())

    def _write(self, job: Job) -> None:
        data = asdict(job)
        data.pop("version")
        write_json(self.root / job.id / JOB_FILE, data)
