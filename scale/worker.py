"""One process of a dataset job: the model loaded once, batches of dataset photos in,
``OUT/<id>/`` result folders and one summary row per photo out.

What :func:`flamefit.fitting.batch.fit_images` does for files, :class:`FitWorker` does for
:class:`~flamefit.scale.datasets.DatasetPhoto` bytes, with the same functions: the resume rule
(:func:`flamefit.fitting.plan.resume_decision`, on the SHA-256 of the bytes read, so a result
made from a folder is resumed from a zip of it), prepare / fit / write
(:func:`flamefit.fitting.batch.run_batch`) and the result schema; :class:`RegressWorker` the
same for ``flamefit regress`` (:func:`flamefit.regressor.regress.regress_batch`). A worker runs
in the command's process for a dataset without ``--ray``, and as each Ray actor with it
(:mod:`flamefit.scale.ray_jobs`).

Idempotent: a photo whose report says done with the same bytes is skipped, so a batch retried
after its worker died refits only the photos it had not finished. Every worker appends one line
per photo to ``OUT/.flamefit-scale/journal/<host>-<pid>.jsonl`` (id, status, seconds, time):
which process did what, read by the tests to check that no photo is fitted twice.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from flamefit.fitting.plan import FIT, REFUSE, SKIP, Photo, PlannedPhoto, resume_decision, side_file
from flamefit.fitting.results import write_failure_report
from flamefit.scale.datasets import DatasetPhoto
from flamefit.scale.ffhq import metadata_landmarks
from flamefit.scale.reading import image_size, read_photos, sha256_bytes

#: The job's own files under ``OUT/`` (hidden: ``find_results`` and the ids skip it).
STATE_DIR = ".flamefit-scale"

#: Summary columns of :data:`flamefit.fitting.results.SUMMARY_COLUMNS` plus the worker.
ROW_KEYS = ("id", "input", "status", "reason", "seconds", "landmark_error_percent_iod", "worker")


class _Quiet:
    """The progress object :func:`run_batch` reports to, where nobody watches (a worker)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


class DatasetWorker(ABC):
    """Runs batches of dataset photos into ``out_dir`` (see the module docstring); subclasses
    say how a session starts (:meth:`_start`) and how a planned batch runs (:meth:`_run`).

    Args:
        out_dir: the run's ``--out`` (shared by every worker: a shared file system on a cluster).
        options: the command's options (:class:`FitOptions`, ``RegressOptions``); ``landmarks``,
            ``mask`` and ``init`` are folders of ``<id>.<ext>`` files, as for a folder of photos.
        landmarks_from_metadata: use a photo's FFHQ metadata landmarks instead of detection
            (a photo without them is detected, with a note).
        threads: torch intra-op threads of this process (None: torch's default).
    """

    def __init__(self, out_dir: str | Path, options, *, landmarks_from_metadata: bool = False,
                 threads: int | None = None):
        self.out_dir = Path(out_dir)
        self.options = options
        self.landmarks_from_metadata = landmarks_from_metadata
        self.threads = threads
        self.session = None  # loaded on the first photo to do (a rerun that skips all loads nothing)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.journal = self.out_dir / STATE_DIR / "journal" / f"{self.name}.jsonl"

    @abstractmethod
    def _start(self, device):
        """The session every batch of this process shares (the model on ``device``)."""

    @abstractmethod
    def _run(self, planned: list[PlannedPhoto], summary) -> None:
        """Prepare, process and write ``planned``, recording each photo in ``summary``."""

    def _session(self):
        if self.session is None:
            import torch

            from flamefit.renderer.devices import resolve_device

            if self.threads is not None:
                torch.set_num_threads(max(1, self.threads))
            self.session = self._start(resolve_device(self.options.device))
        return self.session

    def process(self, photos: list[DatasetPhoto], data: list[bytes | Exception] | None = None) -> list[dict]:
        """Do one batch; ``data``: the photos' bytes already read (or why not), else read here.

        Returns:
            one row per photo (:data:`ROW_KEYS`): status ``fitted``, ``skipped`` (done before
            with these bytes) or ``failed`` (with the reason; its ``report.json`` says so).
        """
        from flamefit.fitting.batch import FitSummary

        started = time.time()
        data = read_photos(photos) if data is None else data
        rows: list[dict] = []
        planned: list[PlannedPhoto] = []
        scratch = Path(tempfile.mkdtemp(prefix="flamefit-scale-"))
        try:
            for photo, content in zip(photos, data):
                outcome = self._plan(photo, content, scratch)
                if isinstance(outcome, PlannedPhoto):
                    planned.append(outcome)
                else:
                    rows.append(outcome)
            if planned:
                self._session()
                summary = FitSummary(out_dir=self.out_dir)
                self._run(planned, summary)
                rows += summary.rows
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for row in rows:
            row["worker"] = self.name
        self._log(rows, time.time() - started)
        return rows

    def _plan(self, photo: DatasetPhoto, content, scratch: Path) -> PlannedPhoto | dict:
        """A photo to fit (its bytes in a local copy), or its row when there is nothing to fit."""
        def row(status: str, reason: str = "") -> dict:
            return {"id": photo.id, "input": photo.source, "status": status, "reason": reason,
                    "seconds": None, "landmark_error_percent_iod": None}

        if isinstance(content, Exception):
            reason = str(content)
            write_failure_report(self.out_dir / photo.id, photo.id, Path(photo.source), None, reason, 0.0)
            return row("failed", reason)
        sha = sha256_bytes(content)
        decision, text = resume_decision(self.out_dir, photo.id, sha, overwrite=self.options.overwrite,
                                         on_changed=self.options.on_changed)
        if decision == SKIP:
            return row("skipped", "done before with this photo")
        if decision == REFUSE:
            return row("failed", text)
        assert decision == FIT
        local = scratch / f"{photo.id}{photo.suffix}"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(content)
        named = Photo(id=photo.id, path=local, root=scratch)
        files = {option: side_file(option, given, named, 2) for option, given in per_photo_inputs(self.options)}
        note = text
        if self.landmarks_from_metadata and files.get("landmarks") is None:
            files["landmarks"], extra = _metadata_landmarks_file(photo, content, scratch)
            note = "; ".join(filter(None, [note, extra]))
        return PlannedPhoto(id=photo.id, path=local, sha256=sha, note=note, source=photo.source, **files)

    def _log(self, rows: list[dict], seconds: float) -> None:
        """Append the batch's rows to this worker's journal (one JSON object a line)."""
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.time()
        with open(self.journal, "a", encoding="utf-8") as stream:
            for row in rows:
                stream.write(json.dumps({"id": row["id"], "status": row["status"], "time": round(stamp, 3),
                                         "batch_seconds": round(seconds, 3)}) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


class FitWorker(DatasetWorker):
    """``flamefit fit``'s worker: :func:`flamefit.fitting.batch.start_session` once,
    :func:`flamefit.fitting.batch.run_batch` per batch."""

    def _start(self, device):
        from flamefit.fitting.batch import start_session

        return start_session(self.options, device)

    def _run(self, planned: list[PlannedPhoto], summary) -> None:
        from flamefit.fitting.batch import run_batch

        run_batch(planned, self.session, self.out_dir, summary, _Quiet())


class RegressWorker(DatasetWorker):
    """``flamefit regress``'s worker: :func:`flamefit.regressor.regress.start_session` once,
    :func:`flamefit.regressor.regress.regress_batch` per batch."""

    def _start(self, device):
        from flamefit.regressor.regress import start_session

        return start_session(self.options, device)

    def _run(self, planned: list[PlannedPhoto], summary) -> None:
        from flamefit.regressor.regress import regress_batch

        regress_batch(planned, self.session, self.out_dir, summary, _Quiet())


def per_photo_inputs(options) -> list[tuple[str, Path]]:
    """``(option, folder)`` of the per-photo inputs given: ``--landmarks``, ``--mask`` and a
    ``--init`` naming files (not a keyword: :func:`flamefit.fitting.options.init_keyword`), of
    the options that have them."""
    from flamefit.fitting.options import init_keyword

    given = [("landmarks", getattr(options, "landmarks", None)), ("mask", getattr(options, "mask", None))]
    init = getattr(options, "init", None)
    if init is not None and init_keyword(init) is None:
        given.append(("init", init))
    return [(option, Path(value)) for option, value in given if value is not None]


def _metadata_landmarks_file(photo: DatasetPhoto, content: bytes, scratch: Path) -> tuple[Path | None, str | None]:
    """The photo's FFHQ metadata landmarks as a ``.npy`` in ``scratch`` (original photo pixels),
    or ``(None, note)`` when it has none (it is then detected)."""
    if photo.landmarks is None:
        return None, "no landmarks in the FFHQ metadata for this photo; detected instead"
    try:
        points = metadata_landmarks(photo, image_size(content))
    except OSError:
        return None, None  # not an image: prepare says so
    path = scratch / "landmarks" / f"{photo.id}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, points)
    return path, "landmarks from the FFHQ metadata (--landmarks-from-metadata)"


def read_journal(out_dir: str | Path) -> list[dict]:
    """Every journal line of every worker of the runs into ``out_dir``, oldest file first."""
    lines = []
    for path in sorted((Path(out_dir) / STATE_DIR / "journal").glob("*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append({**json.loads(text), "worker": path.stem})
            except ValueError:
                continue  # a line cut by a killed worker
    return lines
