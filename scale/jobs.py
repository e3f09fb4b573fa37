"""``flamefit fit`` over a dataset: here, or on Ray actors with ``--ray``.

:func:`fit_dataset` lists the photos (:func:`flamefit.scale.datasets.open_dataset`), holds the
output folder's lock, sends batches to :class:`flamefit.scale.worker.FitWorker` (in this
process, or one per Ray actor: :mod:`flamefit.scale.ray_jobs`), shows progress (photos/s and
the time left) and writes ``OUT/summary.csv``; the result folders are those of ``flamefit
fit`` (:mod:`flamefit.fitting.results`). On a cluster ``OUT`` must be on a file system every
node writes to.
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
from flamefit.scale.worker import ROW_KEYS, FitWorker, per_photo_inputs
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


class FitActor:
    """A Ray Data actor: one :class:`FitWorker` (one model) per actor process."""

    def __init__(self, out_dir: str, options: FitOptions, landmarks_from_metadata: bool, threads: int):
        self.worker = FitWorker(out_dir, options, landmarks_from_metadata=landmarks_from_metadata,
                                threads=threads)

    def __call__(self, batch: dict) -> dict:
        from flamefit.scale.ray_jobs import pack_rows, unpack_batch

        photos, data = unpack_batch(batch)
        return pack_rows(self.worker.fit(photos, data), ROW_KEYS)


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


def _rows_here(dataset: Dataset, out_dir: Path, options: FitOptions, scale: ScaleOptions) -> Iterator[dict]:
    worker = FitWorker(out_dir, options, landmarks_from_metadata=scale.landmarks_from_metadata)
    photos = dataset.photos
    for start in range(0, len(photos), options.batch_size):
        yield from worker.fit(photos[start:start + options.batch_size])


def _rows_on_ray(dataset: Dataset, out_dir: Path, options: FitOptions, scale: ScaleOptions) -> Iterator[dict]:
    from flamefit.scale import ray_jobs

    started = ray_jobs.connect(scale)
    try:
        yield from ray_jobs.run_pool(
            dataset.photos, FitActor,
            {"out_dir": str(out_dir.absolute()), "options": options,
             "landmarks_from_metadata": scale.landmarks_from_metadata},
            options.batch_size, ray_jobs.for_device(scale, options.device))
    finally:
        ray_jobs.shutdown_if(started)


def _check_per_photo_inputs(options: FitOptions, dataset: Dataset) -> None:
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


def fit_dataset(inputs: list[str | Path], out_dir: str | Path, options: FitOptions | None = None,
                scale: ScaleOptions | None = None, show_progress: bool = True):
    """Fit every photo of a dataset (folders, zip / tar / parquet files; see
    :mod:`flamefit.scale.datasets`) into ``OUT/<id>/`` and write ``OUT/summary.csv``.

    Returns:
        :class:`DatasetSummary`.

    Raises:
        UsageError: bad options or inputs, Ray missing or unreachable (nothing was fitted).
        FitInterrupted: Ctrl-C; what finished is written and in its ``summary``.
    """
    from flamefit.fitting.batch import FitInterrupted, check_options, check_output_folder
    from flamefit.fitting.results import SUMMARY_FILE, write_summary_csv
    from flamefit.flame.selection import select_model

    options = options or FitOptions()
    scale = scale or ScaleOptions()
    check_options(options)
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
            for row in runner(dataset, out_dir, options, scale):
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
