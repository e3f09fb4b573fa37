"""``flamefit fit``: fit every photo of files, folders and globs, in batches, resumably.

A batch job never dies on one bad image: preparation errors (not an image, no face, bad
landmark file ...) and fitting failures are written to that image's ``report.json`` and the
summary, and the job goes on. A rerun skips images whose report says done (unless
``overwrite``), so a crashed job resumes where it stopped.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from flamefit.fitting.errors import InputError
from flamefit.fitting.options import FitOptions
from flamefit.fitting.optimizer import FitConfig, fit_batch
from flamefit.fitting.parameters import FitParameters, load_initialisation
from flamefit.fitting.prepare import PreparedImage, prepare_image
from flamefit.fitting.results_io import REPORT_NAME, is_done, write_json
from flamefit.renderer.devices import resolve_device
from flamefit.renderer.rasterize import resolve_backend

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


@dataclass
class FitSummary:
    """What happened to each input: names of fitted and skipped images, failures with reasons."""

    fitted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None

    def line(self) -> str:
        return (f"{len(self.fitted)} fitted, {len(self.skipped)} skipped (already done), "
                f"{len(self.failed)} failed; results in {self.out_dir}")


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit_images`; ``summary`` says what finished before it."""

    def __init__(self, summary: FitSummary):
        super().__init__("interrupted")
        self.summary = summary


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns into a list of files.

    Files named explicitly are kept whatever their suffix (a non-image then fails with a clear
    reason); folders and globs contribute files with image suffixes only.
    """
    found: list[Path] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(glob.glob(str(entry), recursive=True))
            if not matches:
                found.append(path)  # reported as "file not found" for this input
            found += [Path(m) for m in matches if Path(m).suffix.lower() in IMAGE_SUFFIXES]
    unique, seen = [], set()
    for path in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def output_names(paths: list[Path]) -> list[str]:
    """Folder names for the outputs: the file stem, made unique with its parent folder name."""
    stems = [p.stem for p in paths]
    names = []
    for path, stem in zip(paths, stems):
        name = stem if stems.count(stem) == 1 else f"{path.parent.name}_{stem}"
        while name in names:
            name += "_"
        names.append(name)
    return names


def per_image_file(option: Path | None, image: Path, suffixes: tuple[str, ...]) -> Path | None:
    """A per-image side file: the option itself when it is a file, else ``<folder>/<stem>.*``."""
    if option is None:
        return None
    option = Path(option)
    if option.is_dir():
        return next((option / f"{image.stem}{s}" for s in suffixes
                     if (option / f"{image.stem}{s}").is_file()), None)
    return option


def _check_output_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".flamefit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(out_dir, f"cannot write to the output folder ({error.strerror or error}); "
                                  "choose another --out") from None


def _failure_report(folder: Path, path: Path, reason: str, started: float) -> None:
    try:
        write_json(folder / REPORT_NAME, {"status": "failed", "input": str(path), "error": reason,
                                          "seconds": round(time.time() - started, 2)})
    except OSError as error:
        log.warning("could not write the failure report of %s: %s", path, error)


def _initial_parameters(scene, items: list[PreparedImage], options: FitOptions, paths: dict,
                        device) -> FitParameters | None:
    """Parameters from ``--init`` files for this batch, or None (zero init + landmark camera)."""
    if options.init is None:
        return None
    from flamefit.fitting.optimizer import camera_from_landmarks

    params = scene.initial_parameters(len(items), device)
    landmarks = torch.tensor(np.stack([it.landmarks_screen for it in items]), dtype=torch.float32,
                             device=device)
    params.camera.copy_(camera_from_landmarks(scene, params, landmarks, options.resolution))
    for row, item in enumerate(items):
        init_path = per_image_file(options.init, paths[item.name], (".npz", ".npy", ".pkl"))
        if init_path is None:
            continue
        values = load_initialisation(init_path, scene.flame.n_shape, scene.flame.n_expression,
                                     scene.albedo.n_components)
        for key, value in values.items():
            target = getattr(params, key)
            if key == "camera" and value.shape[0] != target.shape[1]:
                raise InputError(init_path, f"camera has {value.shape[0]} values but the "
                                            f"{scene.camera_type} camera needs {target.shape[1]}")
            target[row] = torch.as_tensor(value, dtype=target.dtype, device=device)
    return params


def fit_images(inputs: list[str | Path], out_dir: str | Path, options: FitOptions | None = None,
               show_progress: bool = True) -> FitSummary:
    """Fit every photo in ``inputs`` and write ``OUT/<name>/`` for each (see :mod:`flamefit.fitting.outputs`).

    Returns:
        :class:`FitSummary`. Raises only for problems that stop the whole job (no model, an
        output folder that cannot be written).
    """
    from tqdm import tqdm

    from flamefit.fitting.outputs import write_fit_outputs
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model

    options = options or FitOptions()
    if options.batch_size < 1 or options.resolution < 32:
        raise ValueError(f"batch size must be >= 1 and resolution >= 32 (got {options.batch_size}, "
                         f"{options.resolution})")
    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    device = resolve_device(options.device)
    files = select_model(options.flame_dir, demo=options.demo_head)
    # "auto" is settled once here, so that every report names the rasteriser that ran.
    backend = options.backend if options.backend != "auto" else resolve_backend("auto", device)
    scene = HeadScene.from_model_files(
        files, n_shape=options.n_shape, n_expression=options.n_expression,
        n_texture=options.n_texture, camera=options.camera, texture_space=options.texture_space,
        backend=backend,
    ).to(device)
    config = FitConfig(resolution=options.resolution, rigid_steps=options.rigid_steps,
                       full_steps=options.full_steps, texture_offset=options.texture_offset,
                       snapshot_every=max(1, options.full_steps // 40) if options.gif else 0,
                       seed=options.seed)

    paths = collect_inputs(inputs)
    names = output_names(paths)
    summary = FitSummary(out_dir=out_dir)
    todo: list[tuple[Path, str]] = []
    for path, name in zip(paths, names):
        if not options.overwrite and is_done(out_dir / name):
            summary.skipped.append(name)
        else:
            todo.append((path, name))
    by_name = {name: path for path, name in todo}

    bar = tqdm(total=len(todo), desc="images", unit="img", disable=not show_progress)
    for start in range(0, len(todo), options.batch_size):
        batch_inputs = todo[start : start + options.batch_size]
        started = time.time()
        items: list[PreparedImage] = []
        for path, name in batch_inputs:
            try:
                items.append(prepare_image(
                    path, name, resolution=options.resolution,
                    landmarks_path=per_image_file(options.landmarks, path, (".npy", ".txt", ".pts")),
                    mask_path=per_image_file(options.mask, path, (".png", ".jpg", ".npy")),
                    detector=options.detector, face_index=options.face_index,
                ))
            except (InputError, ValueError, OSError) as error:
                reason = str(error)
                summary.failed[name] = reason
                _failure_report(out_dir / name, path, reason, started)
                bar.write(f"skipped {path}: {reason}")
                bar.update(1)
        if not items:
            continue
        try:
            outcome = _fit_items(scene, items, options, config, by_name, device, bar)
        except (InputError, ValueError, RuntimeError) as error:
            for item in items:
                reason = f"fit failed: {error}"
                summary.failed[item.name] = reason
                _failure_report(out_dir / item.name, by_name[item.name], reason, started)
            bar.update(len(items))
            continue
        seconds = (time.time() - started) / len(items)
        for index, item in enumerate(items):
            status = outcome.status[index]
            report = {
                "status": "done" if status == "done" else "failed",
                "fit_status": status,
                "input": str(by_name[item.name]),
                "model": files.describe(),
                "device": str(device),
                "backend": backend,
                "camera": options.camera,
                "resolution": options.resolution,
                "landmarks_source": item.source,
                "n_faces": item.n_faces,
                "notes": item.notes,
                "image_size": list(item.image.original_size),
                "seconds": round(seconds, 2),
            }
            try:
                write_fit_outputs(out_dir / item.name, item, index, scene, outcome, report)
            except (OSError, ValueError, RuntimeError) as error:
                reason = f"could not write results: {error}"
                summary.failed[item.name] = reason
                _failure_report(out_dir / item.name, by_name[item.name], reason, started)
                continue
            if status == "done":
                summary.fitted.append(item.name)
            else:
                summary.failed[item.name] = status
        bar.update(len(items))
    bar.close()
    return summary


def _fit_items(scene, items, options, config, paths, device, bar):
    images = torch.tensor(np.stack([it.crop for it in items]), device=device).permute(0, 3, 1, 2)
    landmarks = torch.tensor(np.stack([it.landmarks_screen for it in items]), dtype=torch.float32,
                             device=device)
    skin = torch.tensor(np.stack([it.skin for it in items]), device=device)[:, None]
    init = _initial_parameters(scene, items, options, paths, device)
    total = config.rigid_steps + config.full_steps

    def progress(stage: str, step: int, steps: int) -> None:
        if step % 20 == 0 or step == steps:
            done = step if stage == "rigid" else config.rigid_steps + step
            bar.set_postfix_str(f"{stage} {done}/{total}")

    return fit_batch(scene, images.float(), landmarks, skin.float(), config, init=init,
                     progress=progress)
