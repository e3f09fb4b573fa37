"""``flamefit fit`` and ``flamefit regress`` over a dataset: here, or on Ray actors with ``--ray``.

:func:`fit_dataset` (and :func:`regress_dataset`) lists the photos
(:func:`flamefit.scale.datasets.open_dataset`), holds the output folder's lock, sends batches
to a :class:`flamefit.scale.worker.FitWorker` (:class:`~flamefit.scale.worker.RegressWorker`)
in this process, or one per Ray actor (:mod:`flamefit.scale.ray_jobs`), shows progress
(photos/s and the time left) and writes ``OUT/summary.csv``; the result folders are those of
``flamefit fit`` (:mod:`flamefit.fitting.results`). On a cluster ``OUT`` must be on a file
system every node writes to.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from flamefit.fitting.batch import FitSummary
from flamefit.fitting.options import FitOptions
from flamefit.scale.datasets import Dataset, open_dataset
from flamefit.scale.options import ScaleOptions
from flamefit.scale.worker import ROW_KEYS, DatasetWorker, FitWorker, RegressWorker, per_photo_inputs
from flamefit.utils import UsageError, folder_lock

log = logging.getLogger(__name__)


def load_dataset(inputs: list[str | Path], scale: ScaleOptions) -> Dataset:
    """The dataset of ``inputs`` with ``scale.only`` applied and ``--landmarks-from-metadata``
    checked.

    Raises:
        UsageError: no photos, or metadata landmarks asked for and no ``ffhq-dataset-v2.json``.
    """
    dataset = open_dataset(inputs, only=scale.only)
    if scale.landmarks_from_metadata and not dataset.metadata:
        raise UsageError("--landmarks-from-metadata: no ffhq-dataset-v2.json in the folders given, next to "
                         "the files given or up to two folders above them")
    log.info("%s", dataset.describe())
    return dataset


@dataclass
class DatasetSummary(FitSummary):
    """A :class:`FitSummary` with the job's throughput: ``rate`` fitted photos per second of
    wall time (reading, fitting and writing, every worker together)."""

    rate: float = 0.0

    def line(self) -> str:
        return super().line() + (f"; {self.rate:.2f} photos/s" if self.fitted else "")


class WorkerActor:
    """A Ray Data actor: one :class:`~flamefit.scale.worker.DatasetWorker` of class
    ``worker_class`` (one model) per actor process."""

    def __init__(self, worker_class: type, out_dir: str, options, landmarks_from_metadata: bool, threads: int):
        self.worker = worker_class(out_dir, options, landmarks_from_metadata=landmarks_from_metadata,
                                   threads=threads)

    def __call__(self, batch: dict) -> dict:
        from flamefit.scale.ray_jobs import pack_rows, unpack_batch

        photos, data = unpack_batch(batch)
        return pack_rows(self.worker.process(photos, data), ROW_KEYS)


class Progress:
    """The driver's progress bar: photos per second over the photos that needed work and the
    time left, with the counts so far."""

    def __init__(self, total: int, show: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="photo", desc="photos", disable=not show, smoothing=0.1)
        self.counts = {"fitted": 0, "skipped": 0, "failed": 0}
        self.started = time.time()

    def update(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in self.counts.items() if n), refresh=False)
        self.bar.update(1)

    def close(self) -> float:
        """Close the bar; the rate of fitted photos per second of wall time."""
        self.bar.close()
        seconds = max(time.time() - self.started, 1e-9)
        return self.counts["fitted"] / seconds


def _rows_here(worker_class: type, dataset: Dataset, out_dir: Path, options, scale: ScaleOptions) -> Iterator[dict]:
    worker = worker_class(out_dir, options, landmarks_from_metadata=scale.landmarks_from_metadata)
    photos = dataset.photos
    for start in range(0, len(photos), options.batch_size):
        yield from worker.process(photos[start:start + options.batch_size])


def _rows_on_ray(worker_class: type, dataset: Dataset, out_dir: Path, options, scale: ScaleOptions) -> Iterator[dict]:
    from flamefit.scale import ray_jobs

    started = ray_jobs.connect(scale)
    try:
        yield from ray_jobs.run_pool(
            dataset.photos, WorkerActor,
            {"worker_class": worker_class, "out_dir": str(out_dir.absolute()), "options": options,
             "landmarks_from_metadata": scale.landmarks_from_metadata},
            options.batch_size, ray_jobs.for_device(scale, options.device))
    finally:
        ray_jobs.shutdown_if(started)


def _check_per_photo_inputs(options, dataset: Dataset) -> None:
    """``--landmarks``, ``--mask`` and ``--init`` must be folders of ``<id>.<ext>`` files for
    several photos (checked here, before any worker starts).

    Raises:
        UsageError: one file given for several photos, or a path that does not exist.
    """
    from flamefit.fitting.plan import Photo, side_file

    first = dataset.photos[0]
    photo = Photo(first.id, Path(first.source), Path(first.source).parent)
    for option, given in per_photo_inputs(options):
        side_file(option, given, photo, len(dataset.photos))


def run_dataset(worker_class: type[DatasetWorker], inputs: list[str | Path], out_dir: str | Path, options,
                scale: ScaleOptions, show_progress: bool = True) -> DatasetSummary:
    """Every photo of a dataset through ``worker_class`` workers (here, or on Ray with
    ``scale.ray``) into ``OUT/<id>/``, and ``OUT/summary.csv``; ``options`` already checked.

    Raises:
        UsageError: bad inputs or per-photo options, Ray missing or unreachable.
        FitInterrupted: Ctrl-C; what finished is written and in its ``summary``.
    """
    from flamefit.fitting.batch import FitInterrupted, check_output_folder
    from flamefit.fitting.results import SUMMARY_FILE, write_summary_csv
    from flamefit.flame.selection import select_model

    out_dir = Path(out_dir)
    dataset = load_dataset(inputs, scale)
    _check_per_photo_inputs(options, dataset)
    select_model(options.flame_dir, open_model=options.open_model)  # no model: say so before any work
    check_output_folder(out_dir)
    summary = DatasetSummary(out_dir=out_dir)
    runner = _rows_here if scale.ray is None else _rows_on_ray
    with folder_lock(out_dir):
        progress = Progress(len(dataset.photos), show_progress)
        try:
            for row in runner(worker_class, dataset, out_dir, options, scale):
                summary.record(row["id"], row["input"], row["status"], row.get("reason") or "",
                               row.get("seconds"), row.get("landmark_error_percent_iod"))
                progress.update(row["status"])
        except KeyboardInterrupt:
            progress.close()
            write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
            raise FitInterrupted(summary) from None
        summary.rate = progress.close()
        write_summary_csv(out_dir / SUMMARY_FILE, summary.rows)
    return summary


def fit_dataset(inputs: list[str | Path], out_dir: str | Path, options: FitOptions | None = None,
                scale: ScaleOptions | None = None, show_progress: bool = True) -> DatasetSummary:
    """Fit every photo of a dataset (folders, zip / tar / parquet files; see
    :mod:`flamefit.scale.datasets`) into ``OUT/<id>/`` and write ``OUT/summary.csv``.

    Raises:
        UsageError: bad options or inputs, Ray missing or unreachable (nothing was fitted).
        FitInterrupted: Ctrl-C; what finished is written and in its ``summary``.
    """
    from flamefit.fitting.batch import check_options

    options = options or FitOptions()
    check_options(options)
    return run_dataset(FitWorker, inputs, out_dir, options, scale or ScaleOptions(), show_progress)


def regress_dataset(inputs: list[str | Path], out_dir: str | Path, options, scale: ScaleOptions | None = None,
                    show_progress: bool = True) -> DatasetSummary:
    """``flamefit regress`` (:class:`flamefit.regressor.options.RegressOptions`) over every photo
    of a dataset, as :func:`fit_dataset`; the regressor file is checked here first.

    Raises:
        UsageError: no or a bad regressor, bad inputs, Ray missing or unreachable.
    """
    from flamefit.regressor.regress import load_network, resolve_options

    options = resolve_options(options)
    load_network(options, "cpu")  # a bad --model: say so before any work
    return run_dataset(RegressWorker, inputs, out_dir, options, scale or ScaleOptions(), show_progress)
