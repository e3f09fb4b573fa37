"""``flamefit build-texture-space`` over a dataset: here, or with each round's fits on Ray actors.

The build is :func:`flamefit.texture_space.build.build_texture_space` unchanged: the same build
folder, resume rules, rounds and reports. What this module adds:

* **inputs**: the photos of a dataset (:mod:`flamefit.scale.datasets`, ``--only``). Archive
  members are unpacked once into ``DIR/inputs/<id><suffix>`` (every round reads them again);
  plain files are used where they are.
* **FFHQ landmarks**: with ``--landmarks-from-metadata`` a photo's metadata landmarks are
  written to the build's landmark cache ``DIR/landmarks/<id>.npy`` (original pixels), which
  every round uses instead of detecting.
* **--ray**: stage 1 of each round (fit + unwrap, the expensive part) runs on a pool of actors,
  each holding a :class:`~flamefit.texture_space.build.RoundFitter` (one model, the round's
  scene), writing the per-photo records, fits and unwraps into the build folder; the driver then
  completes the maps and takes the streaming PCA (:mod:`flamefit.texture_space.pca`) from the
  memory-mapped stack as before, so its memory stays bounded by the PCA's block size, not by
  the number of photos. A dead actor is restarted and its batch retried; photos it had
  recorded are not redone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flamefit.scale.datasets import KIND_FILE, DatasetPhoto
from flamefit.scale.ffhq import metadata_landmarks
from flamefit.scale.reading import image_size, read_photo
from flamefit.scale.options import ScaleOptions
from flamefit.texture_space.options import BuildOptions
from flamefit.utils import UsageError, atomic_write, folder_lock

log = logging.getLogger(__name__)

#: Where archive members are unpacked in the build folder.
INPUTS_DIR = "inputs"

ROW_KEYS = ("id", "status", "reason", "worker")


def _photo_file(out_dir: Path, photo: DatasetPhoto) -> Path:
    """The photo as a file: itself, or its member unpacked once into ``DIR/inputs/``."""
    if photo.kind == KIND_FILE:
        return Path(photo.source)
    target = out_dir / INPUTS_DIR / f"{photo.id}{photo.suffix}"
    if not target.is_file():
        try:
            data = read_photo(photo)
        except OSError as error:
            log.warning("%s", error)
            data = b""  # an empty file: the build records the photo as skipped, with why
        atomic_write(target, lambda stream: stream.write(data))
    return target


def _cache_metadata_landmarks(out_dir: Path, photo: DatasetPhoto, path: Path) -> None:
    import numpy as np

    from flamefit.texture_space.state import BuildFolder

    cache = BuildFolder(out_dir).landmarks_file(photo.id)
    if photo.landmarks is None or cache.is_file():
        return
    try:
        with open(path, "rb") as stream:
            size = image_size(stream.read())
    except OSError:
        return  # not an image: the build says so
    points = metadata_landmarks(photo, size)
    atomic_write(cache, lambda stream: np.save(stream, points))


class BuildActor:
    """A Ray Data actor: stage 1 of one round for batches of photos (one model per actor)."""

    def __init__(self, out_dir: str, options: BuildOptions, round_index: int, space: str | None, threads: int):
        import os
        import socket

        import torch

        from flamefit.texture_space.build import RoundFitter

        torch.set_num_threads(max(1, threads))
        self.out_dir, self.options = Path(out_dir), options
        self.round_index, self.space = round_index, None if space is None else Path(space)
        self.fitter = RoundFitter(self.out_dir, options)
        self.name = f"{socket.gethostname()}-{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        from flamefit.fitting.results import read_report
        from flamefit.scale.ray_jobs import pack_rows, unpack_batch
        from flamefit.texture_space.state import BuildFolder, read_json

        photos, _ = unpack_batch(batch)
        pairs = [(Path(photo.source), photo.id) for photo in photos]
        fits = None
        if self.options.from_fits is not None:
            fits = {name: read_report(Path(self.options.from_fits) / name) for _, name in pairs}
        self.fitter(self.round_index, self.space, pairs, fits)
        folder = BuildFolder(self.out_dir)
        rows = []
        for _, name in pairs:
            record = read_json(folder.photo_record(self.round_index, name)) or {}
            rows.append({"id": name, "status": record.get("status", "missing"),
                         "reason": record.get("reason", ""), "worker": self.name})
        return pack_rows(rows, ROW_KEYS)


class RayRounds:
    """A :data:`~flamefit.texture_space.build.RoundRunner` sending each round's unrecorded
    photos through a pool of :class:`BuildActor` (connect first)."""

    def __init__(self, out_dir: Path, options: BuildOptions, scale: ScaleOptions, show_progress: bool):
        self.out_dir, self.options, self.scale, self.show_progress = out_dir, options, scale, show_progress

    def __call__(self, round_index, space, photos, fits=None) -> None:
        from flamefit.scale import ray_jobs
        from flamefit.scale.jobs import Progress
        from flamefit.texture_space.state import BuildFolder

        folder = BuildFolder(self.out_dir)
        todo = [DatasetPhoto(id=name, source=str(path)) for path, name in photos
                if not folder.photo_record(round_index, name).is_file()]
        if not todo:
            return
        progress = Progress(len(todo), self.show_progress)
        progress.bar.set_description(f"round {round_index}: fit + unwrap on Ray")
        kwargs = {"out_dir": str(self.out_dir.absolute()), "options": self.options,
                  "round_index": round_index, "space": None if space is None else str(Path(space).absolute())}
        scale = ray_jobs.for_device(self.scale, self.options.device)
        for row in ray_jobs.run_pool(todo, BuildActor, kwargs, self.options.batch_size, scale, read=False):
            progress.update({"used": "fitted"}.get(row["status"], "skipped"))
        progress.close()


def build_texture_space_dataset(inputs: list[str | Path], out_dir: str | Path, options: BuildOptions | None = None,
                                scale: ScaleOptions | None = None, show_progress: bool = True):
    """Build a texture space from a dataset's photos (see the module docstring), here or with
    ``scale.ray`` on Ray.

    Returns:
        :class:`flamefit.texture_space.build.BuildSummary`.

    Raises:
        UsageError, InputError: as :func:`flamefit.texture_space.build.build_texture_space`;
            also Ray missing or unreachable.
    """
    from flamefit.scale.jobs import load_dataset
    from flamefit.texture_space.build import build_texture_space

    options = options or BuildOptions()
    scale = scale or ScaleOptions()
    out_dir = Path(out_dir)
    photos = None
    if options.from_fits is None or inputs:
        dataset = load_dataset(inputs, scale)
        with folder_lock(out_dir):  # unpacking writes into the build folder
            photos = []
            for photo in dataset.photos:
                path = _photo_file(out_dir, photo)
                if scale.landmarks_from_metadata:
                    _cache_metadata_landmarks(out_dir, photo, path)
                photos.append((path, photo.id))
    elif scale.landmarks_from_metadata or scale.only is not None:
        raise UsageError("--landmarks-from-metadata and --only choose among photos given; with --from-fits "
                         "the photos are the fits'")
    fit_round = None
    started = False
    if scale.ray is not None:
        from flamefit.scale import ray_jobs

        started = ray_jobs.connect(scale)
        fit_round = RayRounds(out_dir, options, scale, show_progress)
    try:
        return build_texture_space([] if photos is not None else inputs, out_dir, options,
                                   show_progress=show_progress, photos=photos, fit_round=fit_round)
    finally:
        if scale.ray is not None:
            ray_jobs.shutdown_if(started)
