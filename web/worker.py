"""The server's fitting: one head model in memory, a bounded queue, N worker threads.

:class:`FitService` loads the model once (in the background, so the server answers at once),
then each worker takes a queued job, and on a GPU also the jobs queued behind it up to the batch
size, and fits them as one batch with :func:`flamefit.fitting.batch.fit_prepared`; the workers
share the model, which the fit only reads. Progress (stage, step, landmark error of the current
parameters) goes to the :class:`flamefit.web.jobs.JobStore` as it happens; the results are the
ordinary result folder of :func:`flamefit.fitting.outputs.write_fit_outputs` plus
``viewer.json`` (:data:`VIEWER_FILE`) with the landmarks the page draws.

Face detection for an upload (:meth:`FitService.detect`) runs on the request's thread, so the
page can ask which face to fit before anything is queued. Every detection, the workers' included,
holds one lock: the detectors (MediaPipe's LiteRT interpreters, dlib's) are not thread-safe.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

from flamefit.web.jobs import DONE, FAILED, QUEUED, RESULT_DIR, RUNNING, JobStore
from flamefit.web.options import ServeOptions

log = logging.getLogger("flamefit.web")

#: ``result/viewer.json``: ``image_size [W, H]``, ``detected`` and ``fitted`` ``(68, 2)`` in the
#: photo's pixel indices, ``model`` ``(68, 3)`` the fitted landmarks in model space (metres, y up,
#: the frame of ``mesh.glb``).
VIEWER_FILE = "viewer.json"

#: Landmark error of the current parameters is computed every this many steps (and at the last).
ERROR_EVERY = 10


class QueueFull(Exception):
    """The queue holds :attr:`ServeOptions.queue_size` photos already."""


def plain_input_error(error: Exception) -> str:
    """One sentence for the page about a photo that cannot be fitted (never a server path)."""
    from flamefit.fitting.errors import FaceTooSmallError, InputError, NoFaceError, NotAnImageError

    if isinstance(error, NoFaceError) and "face_index" not in str(error):
        return ("No face was found in this photo. Use a photo where the face is clearly visible, "
                "roughly frontal and at least 60 pixels wide.")
    if isinstance(error, FaceTooSmallError):
        return f"The face is too small to fit: {error.problem}."
    if isinstance(error, NotAnImageError):
        return f"The file could not be read as a photo: {error.problem}."
    if isinstance(error, InputError):
        problem = error.problem
        return problem[:1].upper() + problem[1:] + ("" if problem.endswith(".") else ".")
    return f"The fit failed: {error}."


class FitService:
    """Fits queued jobs of ``store`` with one shared model.

    Args:
        store: the jobs.
        options: device, workers, batch size, queue size and the fit's settings.
    """

    def __init__(self, store: JobStore, options: ServeOptions):
        self.store = store
        self.options = options
        self.queue: queue.Queue[str] = queue.Queue(maxsize=options.queue_size)
        self.scene = None
        self.device = None
        self.model_name: str | None = None
        self.backend: str | None = None
        self.load_error: str | None = None
        self.start_from: str | None = None  # where fits start (fitting.batch.fit_start)
        self.steps: tuple[int, int] | None = None
        self.schedule = None  # flamefit.fitting.options.Schedule once the model is loaded
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._detect_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start loading the model and the worker threads (returns at once)."""
        self._threads = [threading.Thread(target=self._load_model, name="flamefit-model", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"flamefit-worker-{i}", daemon=True)
                          for i in range(self.options.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the workers to stop after their current batch and wait up to ``timeout`` s."""
        self._stop.set()
        self.ready.set()
        deadline = time.time() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.time()))

    def submit(self, job_id: str) -> None:
        """Queue a job (its state must already be ``queued``).

        Raises:
            QueueFull: the queue is full; the caller refuses the upload.
        """
        try:
            self.queue.put_nowait(job_id)
        except queue.Full:
            raise QueueFull() from None

    def status(self) -> dict:
        """For ``/healthz``: model state, device, queue length, busy workers."""
        return {"model_loaded": self.scene is not None, "model": self.model_name,
                "model_error": self.load_error, "device": None if self.device is None else str(self.device),
                "backend": self.backend, "workers": self.options.workers, "busy_workers": self._busy,
                "queued": self.queue.qsize(), "queue_size": self.options.queue_size}

    @property
    def batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return 8 if self.device is not None and self.device.type == "cuda" else 1

    def _load_model(self) -> None:
        from flamefit.fitting.batch import fit_start
        from flamefit.fitting.options import resolve_schedule
        from flamefit.fitting.scene import HeadScene
        from flamefit.flame.selection import select_model
        from flamefit.renderer.devices import resolve_device
        from flamefit.renderer.rasterize import resolve_backend

        started = time.time()
        try:
            device = resolve_device(self.options.device)
            files = select_model(self.options.flame_dir, open_model=self.options.open_model)
            backend = (self.options.backend if self.options.backend != "auto"
                       else resolve_backend("auto", device))
            scene = HeadScene.from_model_files(files, camera=self.options.camera, backend=backend).to(device)
            scene.requires_grad_(False)
            start, _ = fit_start(scene, self.options.init)
            schedule = resolve_schedule(self.options.rigid_steps, self.options.full_steps, start)
        except Exception as error:  # noqa: BLE001 - any failure is reported on /healthz and per job
            self.load_error = f"the head model could not be loaded: {error}"
            log.error("%s", self.load_error)
        else:
            self.device, self.backend, self.model_name = device, backend, files.describe()
            self.start_from, self.schedule, self.steps = start, schedule, schedule.steps
            self.scene = scene
            log.info("model loaded in %.1f s: %s on %s (%s rasteriser)", time.time() - started,
                     self.model_name, device, backend)
        self.ready.set()

    # -- detection (request thread) -----------------------------------------------------------

    def detect(self, photo: Path) -> tuple[list[dict], list[int]]:
        """Faces in the photo, largest first, as ``{"box": [x0, y0, x1, y1]}`` in the photo's
        pixels as a viewer shows it (EXIF orientation applied), and that photo's ``[width,
        height]``.

        Raises:
            flamefit.fitting.errors.InputError: unreadable photo, no face (see
                :func:`plain_input_error` for the page's wording).
        """
        from flamefit.fitting.detect import detect_faces
        from flamefit.fitting.image_io import load_image

        with self._detect_lock:
            image = load_image(photo)
            # Full profiles the face mesh drops are offered when the fit can place their points.
            faces = detect_faces(image.rgb, detector=self.options.detector, path=photo,
                                 all_profiles=self._steep_view() is not None)
        boxes = []
        for face in faces:
            corners = image.to_original(np.asarray(face.box, dtype=np.float64).reshape(2, 2))
            boxes.append({"box": [round(float(v), 1) for v in corners.reshape(-1)]})
        height, width = image.original_size
        return boxes, [int(width), int(height)]

    def _steep_view(self):
        """The image regressor's landmarks for steep profiles (None before the model is loaded
        or when it has no image regressor; :mod:`flamefit.fitting.profile_landmarks`)."""
        from flamefit.fitting.profile_landmarks import steep_view_refiner

        return None if self.scene is None else steep_view_refiner(self.scene)

    # -- workers ------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.queue.get(timeout=0.25)
            except queue.Empty:
                continue
            self.ready.wait()
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            with self._busy_lock:
                self._busy += 1
            try:
                self._run(batch)
            except Exception as error:  # noqa: BLE001 - a worker never dies; the jobs fail
                log.exception("fitting %d job(s) failed", len(batch))
                for job_id in batch:
                    self._fail(job_id, plain_input_error(error))
            finally:
                with self._busy_lock:
                    self._busy -= 1
                for _ in batch:
                    self.queue.task_done()

    def _fail(self, job_id: str, reason: str) -> None:
        log.info("job %s failed: %s", job_id[:6], reason)
        self.store.update(job_id, state=FAILED, error=reason)

    def _run(self, job_ids: list[str]) -> None:
        """Prepare, fit and write a batch of jobs; a job that cannot be prepared fails alone."""
        from flamefit.fitting.batch import _initial_parameters, fit_prepared, regressor_start
        from flamefit.fitting.errors import InputError
        from flamefit.fitting.options import REGRESSOR_INIT, ZERO_INIT
        from flamefit.fitting.optimizer import FitConfig
        from flamefit.fitting.prepare import prepare_image

        if self.scene is None:
            for job_id in job_ids:
                self._fail(job_id, f"The server cannot fit photos: {self.load_error}.")
            return
        started = time.time()
        options = self.options
        jobs, items = [], []
        for job_id in job_ids:
            job = self.store.update(job_id, state=RUNNING, progress={"stage": "preparing"})
            if job is None:  # expired while queued
                continue
            photo = self.store.folder(job_id) / job.photo
            try:
                with self._detect_lock:  # the detectors (LiteRT interpreters, dlib) are not thread-safe
                    item = prepare_image(photo, job_id, resolution=options.resolution,
                                         detector=options.detector, face_index=job.face or 0,
                                         steep_view=self._steep_view())
                if self.start_from == ZERO_INIT:
                    item.init = None  # a steep view's regressor start; zero was asked for
            except (InputError, ValueError, OSError) as error:
                self._fail(job_id, plain_input_error(error))
                continue
            jobs.append(job)
            items.append(item)
        if not items:
            return
        config = FitConfig(resolution=options.resolution, **self.schedule.config_fields())
        hook = _ProgressHook(self.store, self.scene, [job.id for job in jobs], items, options.resolution)
        try:
            if self.start_from == REGRESSOR_INIT:
                regressor_start(self.scene, items, options.resolution)
            init = _initial_parameters(self.scene, items, options.resolution, self.device)
            outcome = fit_prepared(self.scene, items, config, init=init, progress=hook)
        except (InputError, ValueError, RuntimeError) as error:
            for job in jobs:
                self._fail(job.id, plain_input_error(error))
            return
        seconds = (time.time() - started) / len(items)
        for index, (job, item) in enumerate(zip(jobs, items)):
            self._write(job, item, index, outcome, seconds)

    def _write(self, job, item, index: int, outcome, seconds: float) -> None:
        import torch

        from flamefit.fitting.outputs import write_fit_outputs
        from flamefit.fitting.results import base_report, file_sha256
        from flamefit.utils import write_json

        self.store.update(job.id, persist=False, progress={**job.progress, "stage": "writing"})
        folder = self.store.folder(job.id) / RESULT_DIR
        photo = self.store.folder(job.id) / job.photo
        status = outcome.status[index]
        report = {
            **base_report(job.id, photo, file_sha256(photo)),
            "status": DONE if status == "done" else FAILED, "fit_status": status,
            "model": self.model_name, "device": str(self.device), "backend": self.backend,
            "camera": self.options.camera, "resolution": self.options.resolution,
            "landmarks_source": item.source, "n_faces": item.n_faces, "notes": item.notes,
            "image_size": list(item.image.original_size), "seconds": round(seconds, 2),
        }
        try:
            write_fit_outputs(folder, item, index, self.scene, outcome, report)
            params = outcome.params
            with torch.no_grad():
                model_landmarks = self.scene.flame(
                    shape=params.shape[index:index + 1], expression=params.expression[index:index + 1],
                    pose=params.pose[index:index + 1]).landmarks[0]
            with np.load(folder / "landmarks.npz") as marks:
                detected, fitted = marks["detected"], marks["fitted"]
            height, width = item.image.original_size
            write_json(folder / VIEWER_FILE, {
                "image_size": [int(width), int(height)],
                "detected": np.round(detected, 2).tolist(), "fitted": np.round(fitted, 2).tolist(),
                "model": np.round(model_landmarks.cpu().double().numpy(), 6).tolist(),
            })
        except (OSError, ValueError, RuntimeError) as error:
            log.exception("job %s: writing results failed", job.id[:6])
            self._fail(job.id, f"The results could not be written: {error}.")
            return
        if status != "done":
            self._fail(job.id, f"The fit did not converge ({status}). Try another photo.")
            return
        result = {"landmark_error_percent_iod": round(report["landmark_error_percent_iod"], 3),
                  "seconds": report["seconds"], "model": self.model_name, "device": str(self.device),
                  "notes": item.notes}
        self.store.update(job.id, state=DONE, result=result,
                          progress={**job.progress, "stage": "done"})
        log.info("job %s done in %.1f s, landmark error %.2f %% IOD", job.id[:6], seconds,
                 result["landmark_error_percent_iod"])


class _ProgressHook:
    """The fit's progress hook: stage and step of every job in the batch, and every
    :data:`ERROR_EVERY` steps the mean landmark distance of the current parameters to the
    detected landmarks, in percent of the inter-ocular distance."""

    def __init__(self, store: JobStore, scene, job_ids: list[str], items, resolution: int):
        import torch

        from flamefit.flame.landmark_sets import inter_ocular_distance

        self.store, self.scene, self.job_ids, self.resolution = store, scene, job_ids, resolution
        device = next(scene.buffers()).device
        self.targets = torch.tensor(np.stack([it.landmarks_screen for it in items]),
                                    dtype=torch.float32, device=device)
        self.iod = torch.tensor([max(inter_ocular_distance(it.landmarks_crop), 1e-6) for it in items],
                                dtype=torch.float32, device=device)
        self.errors: list[float | None] = [None] * len(job_ids)

    def __call__(self, state) -> None:
        import torch

        if state.step % ERROR_EVERY == 0 or state.step == state.steps or state.step == 1:
            with torch.no_grad():
                predicted = self.scene.landmarks_px(state.params, self.resolution)
                distance = (predicted - self.targets).norm(dim=-1).mean(dim=-1)
                self.errors = (100.0 * distance / self.iod).cpu().tolist()
        for job_id, error in zip(self.job_ids, self.errors):
            self.store.update(job_id, persist=False, progress={
                "stage": state.stage, "step": state.step, "steps": state.steps,
                "landmark_error_percent_iod": None if error is None else round(error, 2)})
