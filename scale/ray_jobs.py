"""The Ray side of a job: join or start a cluster, size the actor pool, stream batches through
it with Ray Data and hand each result row back to the driver as it arrives.

The pipeline (one per ``fit`` run, one per texture-space round)::

    from_items(photo records) ─► map_batches(read bytes)       tasks, READ_CPUS each
                              ─► map_batches(worker class)     ActorPoolStrategy(size=workers),
                                                               one model per actor,
                                                               num_cpus / num_gpus per actor
                              ─► iter_rows() on the driver     progress, summary.csv

Ray Data restarts a dead actor and retries its batch (its defaults for actor pools:
``max_restarts=-1``, ``max_task_retries=-1``); the workers are idempotent (a photo done before
with the same bytes is skipped), so a retried batch refits only what the dead actor had not
finished. Actors reserve fractional CPUs on CPU-only machines (:class:`ScaleOptions`): with
every CPU held by an actor no read task could run and the job would wait forever, which
:func:`pool_shape` refuses up front. Ray is imported only here and only when ``--ray`` is given.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

import numpy as np

from flamefit.scale.options import LOCAL_RAY, ScaleOptions
from flamefit.utils import UsageError

log = logging.getLogger(__name__)

#: CPUs one read task reserves (reading is I/O: several run beside the actors).
READ_CPUS = 0.25


def import_ray():
    """The ``ray`` module, or a :class:`UsageError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--ray needs Ray Data: pip install 'flamefit[ray]' (ray[data] and pyarrow)") from None
    return ray


def _forwarded_env() -> dict[str, str]:
    """The ``FLAMEFIT_*`` variables of the driver (model folder, cache), given to every worker."""
    return {key: value for key, value in os.environ.items() if key.startswith("FLAMEFIT_")}


def connect(scale: ScaleOptions) -> bool:
    """Join the cluster ``scale.ray`` names, or start a local one; True when this call started
    (and the caller must shut down) the connection, False when the process already had one.

    Raises:
        UsageError: Ray is not installed or the address cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "runtime_env": {"env_vars": _forwarded_env()}}
    try:
        if scale.ray in (None, LOCAL_RAY):
            ray.init(num_cpus=scale.ray_cpus, **kwargs)
        else:
            ray.init(address=scale.ray, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UsageError(f"--ray {scale.ray}: cannot join the Ray cluster ({error}); start it with "
                         "`ray start --head` or give its address (HEAD:6379, ray://HEAD:10001)") from None
    return True


def for_device(scale: ScaleOptions, device: str) -> ScaleOptions:
    """``scale`` for a job on ``device`` (``--device``): actors of a ``cpu`` job reserve no GPU."""
    from dataclasses import replace

    if scale.gpus_per_worker is None and str(device) == "cpu":
        return replace(scale, gpus_per_worker=0.0)
    return scale


def pool_shape(scale: ScaleOptions) -> tuple[int, float, float]:
    """``(workers, cpus_per_worker, gpus_per_worker)`` on the connected cluster (see
    :class:`ScaleOptions` for the defaults).

    Raises:
        UsageError: the actors would hold every CPU (nothing left to read photos: a deadlock),
            or ask for more GPUs than the cluster has.
    """
    ray = import_ray()
    resources = ray.cluster_resources()
    n_cpu, n_gpu = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    gpus = scale.gpus_per_worker if scale.gpus_per_worker is not None else (1.0 if n_gpu >= 1 else 0.0)
    cpus = scale.cpus_per_worker if scale.cpus_per_worker is not None else (1.0 if gpus else 0.5)
    if scale.workers is not None:
        workers = scale.workers
    elif gpus:
        workers = max(1, int(n_gpu // gpus))
    else:  # one torch thread each: one actor per CPU, one CPU left to reading and the driver
        workers = max(1, int(n_cpu) - 1)
    if gpus and workers * gpus > n_gpu + 1e-9:
        raise UsageError(f"{workers} workers x {gpus:g} GPUs need {workers * gpus:g} GPUs; the cluster has "
                         f"{n_gpu:g}: lower --ray-workers or --ray-gpus-per-worker")
    if workers * cpus > n_cpu - READ_CPUS + 1e-9:
        raise UsageError(f"{workers} workers x {cpus:g} CPUs leave no CPU to read photos on a cluster of "
                         f"{n_cpu:g} CPUs (the job would wait forever): lower --ray-workers or "
                         "--ray-cpus-per-worker (fractions such as 0.5 are fine)")
    return workers, cpus, gpus


def _quiet_ray_data() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's own bar shows photos/s and the ETA
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _read_batch(batch: dict) -> dict:
    """Ray Data stage: the bytes of a batch of photo records (``data``, or ``error``)."""
    from flamefit.scale.datasets import DatasetPhoto
    from flamefit.scale.reading import read_photos

    photos = [DatasetPhoto.from_json(str(text)) for text in batch["photo"]]
    data = read_photos(photos)
    return {"photo": np.asarray(batch["photo"], dtype=object),
            "data": np.asarray([b"" if isinstance(d, Exception) else d for d in data], dtype=object),
            "error": np.asarray(["" if not isinstance(d, Exception) else str(d) for d in data], dtype=object)}


def unpack_batch(batch: dict) -> tuple[list, list | None]:
    """An actor's input batch -> ``(photos, bytes or OSError each)``; None instead of the bytes
    when the pipeline has no read stage."""
    from flamefit.scale.datasets import DatasetPhoto

    photos = [DatasetPhoto.from_json(str(text)) for text in batch["photo"]]
    if "data" not in batch:
        return photos, None
    data = [OSError(str(error)) if error else bytes(blob) for blob, error in zip(batch["data"], batch["error"])]
    return photos, data


def pack_rows(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """Result rows -> a column batch Ray can store (None -> NaN / "")."""
    def plain(value):
        return "" if value is None else value

    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        if all(v is None or isinstance(v, (int, float)) for v in values):
            columns[key] = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            columns[key] = np.asarray([str(plain(v)) for v in values], dtype=object)
    return columns


def unpack_row(row: dict) -> dict:
    """A result row from Ray -> plain Python values (NaN -> None)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, (float, np.floating)):
            out[key] = None if np.isnan(value) else float(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def run_pool(photos: list, worker_class: type, constructor_kwargs: dict, batch_size: int,
             scale: ScaleOptions, read: bool = True) -> Iterator[dict]:
    """Stream ``photos`` (:class:`~flamefit.scale.datasets.DatasetPhoto`) through an actor pool
    of ``worker_class(**constructor_kwargs, threads=...)`` (a callable taking and returning
    column batches, see :func:`unpack_batch` and :func:`pack_rows`); yields each result row as
    it arrives. ``read``: read the photos' bytes in a Ray Data stage before the actors (False:
    the actors open the files themselves). Call after :func:`connect`."""
    ray = import_ray()
    _quiet_ray_data()
    workers, cpus, gpus = pool_shape(scale)
    log.info("Ray: %d workers x %g CPU x %g GPU, batches of %d", workers, cpus, gpus, batch_size)
    remote = {"runtime_env": {"env_vars": _forwarded_env()}}
    dataset = ray.data.from_items([{"photo": photo.to_json()} for photo in photos],
                                  override_num_blocks=max(1, min(len(photos), -(-len(photos) // batch_size))))
    if read:
        dataset = dataset.map_batches(_read_batch, batch_size=batch_size, batch_format="numpy",
                                      num_cpus=READ_CPUS, **remote)
    dataset = dataset.map_batches(
        worker_class, fn_constructor_kwargs={**constructor_kwargs, "threads": max(1, int(cpus))},
        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus, num_gpus=gpus, **remote)
    for row in dataset.iter_rows():
        yield unpack_row(dict(row))


def shutdown_if(started: bool) -> None:
    if started:
        import_ray().shutdown()
