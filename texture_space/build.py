"""``flamefit build-texture-space``: learn an albedo space from many photos, in rounds.

Each round ``r``:

1. **fit + unwrap** every photo, in batches: :func:`flamefit.fitting.prepare.prepare_image` (detection,
   or the user's ``<stem>.npy`` landmarks; the landmarks found are cached for later rounds),
   :func:`flamefit.fitting.optimizer.fit_batch` with the current albedo space plus a per-texel albedo
   offset, then :func:`flamefit.texture_space.unwrap.unwrap_photos` on a crop of the same square at the
   unwrap resolution. A photo is *skipped* (with its reason) when it cannot be prepared (not an
   image, no face ...), its fit fails, or too little of the face region's skin is seen
   (``min_skin``). Each photo's result is written when its batch is done, so a rerun after a
   crash redoes only unfinished photos.
2. **complete** the training maps' unseen texels (:func:`flamefit.texture_space.completion.complete_textures`,
   default ``"combined"``: mirror texels, then low-rank imputation, then inpainting; see the
   tests for the measured comparison with the other methods);
3. **PCA** of the completed maps, streamed from a memory-mapped stack under ``DIR``
   (:func:`flamefit.texture_space.pca.texture_pca`), saved in the ``FLAME_texture.npz`` layout;
4. **evaluate**: compactness (variance explained by the first k components), generalisation
   (the held-out photos' visible texels reconstructed with the space, against the mean alone),
   and the mean fitting error of the round's fits.

Round 0 fits with a constant skin albedo (``bootstrap="constant"``), the model folder's albedo
space (``bootstrap="model"``) or ``init_space``; round ``r > 0`` with round ``r - 1``'s space,
starting from round ``r - 1``'s fitted pose, shape, light and camera (when the model sizes of
the saved fits match the scene's; otherwise the batch starts from zero). With ``from_fits``
round 0 does not fit: it takes ``flamefit fit`` results (``DIR/<name>/params.npz``,
``landmarks.npz``, ``report.json``), re-cuts each original photo's crop square from the fit's
landmarks (checked against the report's ``crop_to_original``) and unwraps it with the fit's
parameters; photos whose fit failed are skipped in every round with the fit's reason, and later
rounds refit the others as usual, with the fit's landmarks. The held-out photos
(``holdout`` of the usable ones, at least 2, chosen by a hash of their names) are the same in
every round and never enter a space. See :mod:`flamefit.texture_space.state` for the folder layout.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from flamefit.fitting.errors import InputError
from flamefit.fitting.plan import Photo, side_file
from flamefit.utils import UsageError, folder_lock, write_json, write_text
from flamefit.renderer.devices import resolve_device
from flamefit.texture_space.options import BuildOptions
from flamefit.texture_space.state import (
    BuildFolder,
    check_settings,
    load_unwrap,
    read_json,
    save_unwrap,
    write_record,
)

log = logging.getLogger(__name__)

PhotoCallback = Callable[[int, str, dict], None]
"""``on_photo(round, name, record)``, called after each photo's record is written."""

RoundRunner = Callable[[int, "Path | None", "list[tuple[Path, str]]", "dict[str, dict | None] | None"], None]
"""``fit_round(round_index, space, photos, fits)``: stage 1 of a round (fit + unwrap) for the
photos without a record, with the round's albedo ``space`` (None: the bootstrap); ``fits``
as in :func:`_fit_and_unwrap_round`. :class:`RoundFitter` runs it in this process; the
scale-out layer (:mod:`flamefit.scale`) on a pool of Ray actors, each holding a RoundFitter."""


@dataclass
class BuildSummary:
    """What a build produced.

    Attributes:
        out_dir: the build folder.
        space_path: the final space (``DIR/texture_space.npz``).
        rounds: one report per finished round (the content of ``rounds.json``).
        used: photos in the last round's space or held out for its evaluation.
        skipped: photo name -> why it was not used (last round).
    """

    out_dir: Path
    space_path: Path
    rounds: list[dict] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return (f"{len(self.rounds)} round(s); {len(self.used)} photos used, {len(self.skipped)} skipped; "
                f"space in {self.space_path}")


# -- the model ---------------------------------------------------------------------------------
@dataclass
class _Model:
    """What every round shares: model files, UV surface, mirror map and face-region texels."""

    files: object
    surface: object
    mirror_map: np.ndarray | None
    face_texels: torch.Tensor
    vt: np.ndarray
    ft: np.ndarray


def _load_model(options: BuildOptions, device: torch.device) -> _Model:
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.texture_space.mirror import mirror_texel_map, mirror_vertices
    from flamefit.texture_space.unwrap import texel_surface

    files = select_model(options.flame_dir, open_model=options.open_model)
    scene = HeadScene.from_model_files(files, n_shape=1, n_expression=1, n_texture=0)
    vt, ft = scene.vt.numpy().astype(np.float64), scene.ft.numpy()
    faces = scene.flame.faces.numpy()
    surface = texel_surface(vt, ft, options.resolution, device)
    template = scene.flame.v_template.numpy()
    try:
        mirror_map = mirror_texel_map(template, faces, vt, ft, options.resolution, mirror_vertices(template))
    except ValueError as error:
        log.warning("no mirror map for symmetric completion (%s); completion goes on without it", error)
        mirror_map = None
    face_texels = surface.region_texels(scene.flame.faces, scene.face_region)
    return _Model(files, surface, mirror_map, face_texels, vt, ft)


def _scene(model: _Model, options: BuildOptions, space: Path | None, device: torch.device):
    """The fitting scene of a round: the given space, or the bootstrap albedo."""
    from flamefit.fitting.albedo import AlbedoModel
    from flamefit.fitting.scene import HeadScene

    from flamefit.renderer.rasterize import resolve_backend

    backend = options.backend if options.backend != "auto" else resolve_backend("auto", device)
    scene = HeadScene.from_model_files(
        model.files, n_shape=options.n_shape, n_expression=options.n_expression,
        n_texture=options.components, texture_resolution=options.resolution, camera=options.camera,
        texture_space=space, backend=backend,
    )
    if space is None and options.bootstrap == "constant":
        scene.albedo = AlbedoModel.constant(options.resolution)
    return scene.to(device)


# -- stage 1: fit and unwrap -------------------------------------------------------------------
class RoundFitter:
    """Stage 1 of any round for any of its photos, on this machine: the model loaded once, the
    round's scene once per round (a :data:`RoundRunner`).

    Args:
        out_dir: the build folder (records, fits and unwraps are written there).
        options: the build's :class:`BuildOptions`.
        device: torch device (default: ``options.device`` resolved).
        model: the loaded model, when the caller has it already.
        on_photo, show_progress: as in :func:`build_texture_space`.
    """

    def __init__(self, out_dir: str | Path, options: BuildOptions, device=None, model: _Model | None = None,
                 on_photo: PhotoCallback | None = None, show_progress: bool = False):
        self.folder = BuildFolder(Path(out_dir))
        self.options = options
        self.device = device if device is not None else resolve_device(options.device)
        self.model = model
        self.on_photo, self.show_progress = on_photo, show_progress
        self._scene_key, self._scene = None, None

    def __call__(self, round_index: int, space: Path | None, photos: list[tuple[Path, str]],
                 fits: dict[str, dict | None] | None = None) -> None:
        if self.model is None:
            self.model = _load_model(self.options, self.device)
        key = (round_index, str(space))
        if self._scene_key != key:
            self._scene, self._scene_key = _scene(self.model, self.options, space, self.device), key
        _fit_and_unwrap_round(self.folder, self.model, self._scene, self.options, round_index, photos,
                              self.on_photo, self.show_progress, fits=fits)


def _landmarks_path(folder: BuildFolder, options: BuildOptions, path: Path, name: str) -> Path | None:
    """The user's landmark file, else the cached ones; with ``from_fits`` the cache (the fit's
    landmarks) comes first, so every round crops the square the fit used."""
    cached = folder.landmarks_file(name)
    if options.from_fits is not None and cached.is_file():
        return cached
    user = side_file("landmarks", options.landmarks, Photo(name, path, path.parent), 2)
    if user is not None:
        return user
    return cached if cached.is_file() else None


def _previous_parameters(folder: BuildFolder, round_index: int, names: list[str], scene, device):
    """Round ``r - 1``'s fitted parameters of these photos as a start (texture zeroed), or None."""
    if round_index == 0:
        return None
    files = [folder.fit_file(round_index - 1, name) for name in names]
    if not all(f.is_file() for f in files):
        return None
    params = scene.initial_parameters(len(names), device)
    for row, path in enumerate(files):
        with np.load(path, allow_pickle=False) as data:
            for key in ("shape", "expression", "pose", "light", "camera"):
                target = getattr(params, key)
                value = torch.as_tensor(data[key], dtype=target.dtype, device=device)
                if value.shape != target.shape[1:]:
                    return None
                target[row] = value
    return params


def _unwrap_inputs(items, crop_size: int, device):
    """Crops of the fitted squares at ``crop_size`` and their pixel weights ``(B, 1, R, R)``."""
    from flamefit.fitting.crop import crop_image
    from flamefit.texture_space.unwrap import resample_weights

    crops, inside = [], []
    for item in items:
        crop, transform = crop_image(item.image.rgb, item.landmarks, resolution=crop_size)
        crops.append(crop)
        inside.append(transform.inside_image_mask(item.image.rgb.shape[:2]))
    photos = torch.tensor(np.stack(crops), device=device).permute(0, 3, 1, 2).float()
    skin = torch.tensor(np.stack([it.skin for it in items]), device=device)[:, None].float()
    weights = resample_weights(skin, crop_size) * torch.tensor(np.stack(inside), device=device)[:, None]
    return photos, weights


def _fit_and_unwrap_round(folder, model, scene, options, round_index, photos, on_photo, show_progress,
                          fits: dict[str, dict | None] | None = None) -> None:
    """Stage 1 of a round for the photos without a record. ``fits``: with ``from_fits``, each
    photo's ``flamefit fit`` report (None when missing); round 0 then unwraps the fits as they are."""
    from tqdm import tqdm

    from flamefit.fitting.batch import fit_prepared
    from flamefit.fitting.optimizer import FitConfig
    from flamefit.fitting.prepare import prepare_image
    from flamefit.fitting.profile_landmarks import steep_view_refiner
    from flamefit.texture_space.unwrap import unwrap_photos

    device = next(scene.buffers()).device
    config = FitConfig(resolution=options.fit_resolution, rigid_steps=options.iters[0],
                       full_steps=options.iters[1], texture_offset=True)
    crop_size = options.unwrap_crop or max(options.resolution, options.fit_resolution)
    steep_view = steep_view_refiner(scene)  # the image regressor's landmarks on steep profiles
    todo = [(path, name) for path, name in photos if read_json(folder.photo_record(round_index, name)) is None]
    bar = tqdm(total=len(todo), desc=f"round {round_index}: " + ("unwrap fits" if fits is not None and round_index == 0
                                                                  else "fit + unwrap"),
               unit="photo", disable=not show_progress)

    def finish(name: str, record: dict) -> None:
        write_record(folder, round_index, name, record)
        bar.update(1)
        if on_photo is not None:
            on_photo(round_index, name, record)

    for start in range(0, len(todo), options.batch_size):
        batch = todo[start:start + options.batch_size]
        items, inputs = [], {}
        for path, name in batch:
            inputs[name] = path
            if fits is not None:
                report = fits.get(name)
                if report is None or report.get("status") != "done":
                    reason = "no finished fit (no report.json)" if report is None else \
                        f"its fit failed: {report.get('error') or report.get('fit_status') or 'unknown reason'}"
                    finish(name, {"status": "skipped", "stage": "fit", "reason": reason, "input": str(path),
                                  "from_fit": str(Path(options.from_fits) / name)})
                    continue
            if fits is not None and round_index == 0:
                try:
                    item, params = _load_fit(folder, options, scene, Path(options.from_fits) / name, fits[name],
                                             path, name)
                except (InputError, ValueError, OSError, KeyError) as error:
                    finish(name, {"status": "skipped", "stage": "prepare", "input": str(path),
                                  "reason": f"cannot use the fit in {Path(options.from_fits) / name}: {error}"})
                    continue
                items.append((item, params))
                continue
            try:
                item = prepare_image(
                    path, name, resolution=options.fit_resolution,
                    landmarks_path=_landmarks_path(folder, options, path, name),
                    mask_path=side_file("mask", options.mask, Photo(name, path, path.parent), 2),
                    detector=options.detector, steep_view=steep_view,  # landmarks only: starts are the rounds'
                )
            except (InputError, ValueError, OSError) as error:
                finish(name, {"status": "skipped", "stage": "prepare", "reason": str(error), "input": str(path)})
                continue
            cache = folder.landmarks_file(name)
            if not cache.is_file():
                _save_landmarks(cache, item.image.to_original(item.landmarks))
            items.append(item)
        if not items:
            continue
        if fits is not None and round_index == 0:
            _unwrap_fits(folder, model, scene, options, items, inputs, fits, crop_size, finish)
            continue
        names = [it.name for it in items]
        init = _previous_parameters(folder, round_index, names, scene, device)

        def progress(state) -> None:
            if state.step % 20 == 0 or state.step == state.steps:
                bar.set_postfix_str(f"{state.stage} {state.step}/{state.steps}")

        try:
            outcome = fit_prepared(scene, items, config, init=init, progress=progress)
            photos_r, weights = _unwrap_inputs(items, crop_size, device)
            unwrapped = unwrap_photos(scene, outcome.params, photos_r, weights, model.surface)
        except (InputError, ValueError, RuntimeError) as error:
            for name in names:
                finish(name, {"status": "skipped", "stage": "fit", "reason": f"fit failed: {error}",
                              "input": str(inputs[name])})
            continue
        records = [{
            "input": str(inputs[item.name]),
            "landmarks_source": item.source,
            "photometric_error": float(outcome.photometric_error[index]),
            "landmark_error_px": float(outcome.landmark_error[index]),
        } for index, item in enumerate(items)]
        _record_unwrapped(folder, model, options, round_index, items, records, outcome.status,
                          outcome.params, unwrapped, finish)
    bar.close()


def _save_landmarks(path: Path, points: np.ndarray) -> None:
    from flamefit.utils import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda stream: np.save(stream, np.asarray(points, dtype=np.float64)))


def _fit_coefficients(values: np.ndarray, size: int, what: str, strict: bool) -> np.ndarray:
    """Zero-pad a fit's coefficient vector to ``size``; truncate it only when the dropped
    coefficients are zero or ``strict`` is False (texture: the round's space is another one)."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if strict and values.size > size and np.any(values[size:] != 0):
        raise ValueError(f"the fit has {values.size} {what} coefficients, this build's scene {size} "
                         "(fit and build with the same model and component counts)")
    out = np.zeros(size, dtype=np.float32)
    out[:min(size, values.size)] = values[:size]
    return out


def _load_fit(folder: BuildFolder, options: BuildOptions, scene, fit_dir: Path, report: dict, path: Path, name: str):
    """A finished ``flamefit fit`` result as ``(PreparedImage of the fit's crop square, parameter
    dict of the scene's sizes)``. The photo is prepared again with the fit's landmarks (cached
    for later rounds) at the fit's resolution; its crop must map to the photo exactly as the
    report's ``crop_to_original`` says, or the photo changed since the fit.

    Raises:
        ValueError, InputError, OSError, KeyError: a missing or inconsistent result, with why.
    """
    from flamefit.fitting.outputs import crop_to_original_matrix
    from flamefit.fitting.prepare import prepare_image
    from flamefit.fitting.results import load_fit_result

    result = load_fit_result(fit_dir)
    values = result.params
    if result.camera_type != scene.camera_type:
        raise ValueError(f"the fit used a {result.camera_type} camera, this build fits with a "
                         f"{scene.camera_type} one (--camera)")
    cache = folder.landmarks_file(name)
    _save_landmarks(cache, result.detected)
    item = prepare_image(path, name, resolution=result.resolution, landmarks_path=cache,
                         mask_path=side_file("mask", options.mask, Photo(name, path, path.parent), 2),
                         detector=options.detector)
    item.source = f"fit {fit_dir}"
    expected = np.asarray(report["crop_to_original"], dtype=np.float64)
    if "image_size" in report and list(item.image.original_size) != list(report["image_size"]):
        raise ValueError(f"the photo is {list(item.image.original_size)} pixels, the fit's was "
                         f"{list(report['image_size'])}: it changed since the fit")
    if not np.allclose(crop_to_original_matrix(item), expected, rtol=0.0, atol=1e-6 * max(1.0, np.abs(expected).max())):
        raise ValueError("the crop square from the fit's landmarks differs from the fit's crop_to_original")
    start = scene.initial_parameters(1, "cpu").item(0)
    params = {}
    for key, strict in (("shape", True), ("expression", True), ("texture", False)):
        params[key] = _fit_coefficients(values[key], start[key].size, key, strict)
    for key in ("pose", "light", "camera"):
        value = np.asarray(values[key], dtype=np.float32)
        if value.shape != start[key].shape:
            raise ValueError(f"the fit's {key} has shape {value.shape}, the scene needs {start[key].shape}")
        params[key] = value
    return item, params


def _unwrap_fits(folder, model, scene, options, loaded, inputs, fits, crop_size, finish) -> None:
    """Unwrap a batch of ``(PreparedImage, parameters)`` of ``flamefit fit`` results (no refit)."""
    from flamefit.fitting.parameters import FitParameters
    from flamefit.texture_space.unwrap import unwrap_photos

    device = next(scene.buffers()).device
    items = [item for item, _ in loaded]
    params = FitParameters(**{key: torch.tensor(np.stack([p[key] for _, p in loaded]), device=device)
                              for key in ("shape", "expression", "pose", "texture", "light", "camera")})
    try:
        with torch.no_grad():
            photos_r, weights = _unwrap_inputs(items, crop_size, device)
            unwrapped = unwrap_photos(scene, params, photos_r, weights, model.surface)
    except (InputError, ValueError, RuntimeError) as error:
        for item in items:
            finish(item.name, {"status": "skipped", "stage": "unwrap", "reason": f"unwrap failed: {error}",
                               "input": str(inputs[item.name])})
        return
    records = [{
        "input": str(inputs[item.name]),
        "landmarks_source": item.source,
        "from_fit": str(Path(options.from_fits) / item.name),
        "photometric_error": float(fits[item.name].get("photometric_error", float("nan"))),
        "landmark_error_px": float(fits[item.name].get("landmark_error_px_crop", float("nan"))),
    } for item in items]
    _record_unwrapped(folder, model, options, 0, items, records, ["done"] * len(items), params, unwrapped, finish)


def _record_unwrapped(folder, model, options, round_index, items, records, statuses, params, unwrapped, finish) -> None:
    """Write each photo's fit, unwrap and record ("used", or "skipped" for a failed fit or too
    little skin seen)."""
    from flamefit.utils import write_npz

    seen = (unwrapped.confidence.reshape(len(items), -1)[:, model.surface.texel] > 0)
    skin_fraction = (seen & model.face_texels[None]).sum(dim=1) / model.face_texels.sum().clamp_min(1)
    for index, item in enumerate(items):
        record = {**records[index], "skin_fraction": round(float(skin_fraction[index]), 4)}
        if statuses[index] != "done":
            finish(item.name, {**record, "status": "skipped", "stage": "fit",
                               "reason": f"fit failed: {statuses[index]}"})
            continue
        if float(skin_fraction[index]) < options.min_skin:
            finish(item.name, {**record, "status": "skipped", "stage": "unwrap",
                               "reason": f"too little skin visible: {100 * float(skin_fraction[index]):.1f}% "
                                         f"of the face region, need {100 * options.min_skin:.0f}% (--min-skin)"})
            continue
        write_npz(folder.fit_file(round_index, item.name), **params.item(index),
                  photometric_error=record["photometric_error"], landmark_error_px=record["landmark_error_px"])
        save_unwrap(folder.unwrap_file(round_index, item.name),
                    unwrapped.albedo[index].cpu().numpy(), unwrapped.confidence[index].cpu().numpy())
        finish(item.name, {**record, "status": "used"})


# -- stages 2-4: complete, PCA, evaluate -------------------------------------------------------
def holdout_names(names: list[str], fraction: float, seed: int) -> list[str]:
    """The held-out photos: ``max(2, round(fraction * n))`` of ``names`` chosen by a hash of
    ``seed`` and the name (stable when photos are added or fail), none when fewer than 5."""
    if len(names) < 5 or fraction <= 0:
        return []
    count = min(max(2, round(fraction * len(names))), len(names) - 3)
    ranked = sorted(names, key=lambda n: hashlib.sha1(f"{seed}:{n}".encode()).hexdigest())
    return sorted(ranked[:count])


def _load_stack(folder: BuildFolder, round_index: int, names: list[str], path: Path, resolution: int):
    """Write the names' unwrapped maps to ``path`` (float16 memory map) and their confidences
    next to it; returns the two memory maps ``(N, H, W, 3)`` and ``(N, H, W)``."""
    from flamefit.texture_space.texel_source import write_map_stack

    confidence_path = path.with_name(path.stem + "_confidence.npy")
    confidence = np.lib.format.open_memmap(confidence_path, mode="w+", dtype=np.float16,
                                           shape=(len(names), resolution, resolution))

    def chunks():
        for index, name in enumerate(names):
            albedo, weight = load_unwrap(folder.unwrap_file(round_index, name))
            confidence[index] = weight
            yield albedo[None]

    write_map_stack(path, chunks(), len(names), (resolution, resolution), dtype=np.float16)
    confidence.flush()
    return np.load(path, mmap_mode="r"), np.load(confidence_path, mmap_mode="r")


def _pca_method(options: BuildOptions, n_maps: int) -> str:
    if options.pca_method != "auto":
        return options.pca_method
    return "randomized" if options.components + 10 < n_maps / 4 else "gram"


def _build_round_space(folder, model, options, round_index, photos, show_progress) -> dict:
    from tqdm import tqdm

    from flamefit.flame.texture_space_io import load_texture_space, save_texture_space
    from flamefit.texture_space.completion import complete_textures
    from flamefit.texture_space.evaluation import compactness, generalisation
    from flamefit.texture_space.pca import texture_pca, to_texture_space

    started = time.time()
    records = {name: read_json(folder.photo_record(round_index, name)) for _, name in photos}
    used = [name for name, rec in records.items() if rec and rec.get("status") == "used"]
    skipped = {name: (rec or {}).get("reason", "no record") for name, rec in records.items()
               if not rec or rec.get("status") != "used"}
    held_out = holdout_names(used, options.holdout, options.seed)
    train = [name for name in used if name not in held_out]
    if len(train) < 2:
        raise InputError(None, f"round {round_index}: only {len(train)} usable training photo(s) of "
                               f"{len(photos)} (skipped: {skipped}); a texture space needs at least 2 - "
                               "add photos or lower --min-skin")
    round_dir = folder.round_dir(round_index)
    stages = tqdm(total=3, desc=f"round {round_index}: complete + PCA + evaluate", disable=not show_progress)
    maps, confidence = _load_stack(folder, round_index, train, round_dir / "maps.npy", options.resolution)
    completed = np.lib.format.open_memmap(round_dir / "completed.npy", mode="w+", dtype=np.float32, shape=maps.shape)
    device = resolve_device(options.device)  # the imputation runs there too when it is a GPU
    complete_textures(maps, confidence, options.completion, mirror_map=model.mirror_map,
                      rank=options.completion_rank, out=completed,
                      device=device if device.type == "cuda" else None)
    completed.flush()
    stages.update(1)
    n_components = min(options.components, len(train) - 1)
    basis_out = np.lib.format.open_memmap(round_dir / "basis.npy", mode="w+", dtype=np.float32,
                                          shape=(options.resolution, options.resolution, 3, n_components))
    method = _pca_method(options, len(train))
    result = texture_pca(np.load(round_dir / "completed.npy", mmap_mode="r"), n_components, method=method,
                         basis_out=basis_out, **({"seed": options.seed} if method == "randomized" else {}))
    space = to_texture_space(
        result, model.vt, model.ft, round=round_index, completion=options.completion,
        model=model.files.describe(), n_holdout=len(held_out),
        bootstrap=str(options.init_space) if options.init_space else options.bootstrap,
    )
    space_path = save_texture_space(folder.space_file(round_index), space.mean, space.basis,
                                    model.vt, model.ft, space.metadata)
    stages.update(1)

    ratio = result.explained_variance_ratio
    ks = sorted({k for k in (1, 5, 10, 20, 50, n_components) if k <= n_components})
    report = {
        "round": round_index,
        "space": str(space_path),
        "n_photos": len(photos),
        "n_used": len(used),
        "n_train": len(train),
        "n_holdout": len(held_out),
        "holdout": held_out,
        "skipped": skipped,
        "n_components": n_components,
        "pca_method": result.method,
        "completion": options.completion,
        "compactness": {str(k): float(compactness(ratio, k, 1.0)) for k in ks},
        "explained_variance_ratio": [float(v) for v in ratio],
        "fit": _fit_errors(records, used),
    }
    if held_out:
        saved = load_texture_space(space_path)
        maps_h, conf_h = zip(*(load_unwrap(folder.unwrap_file(round_index, n)) for n in held_out))
        maps_h, conf_h = np.stack(maps_h), np.stack(conf_h)
        with_space = generalisation(saved, maps_h, conf_h)
        visible = conf_h > 0
        mean_only = float(np.sqrt(np.mean((maps_h[visible] - saved.mean[None].repeat(len(held_out), 0)[visible]) ** 2)))
        report["generalisation"] = {"rmse_space": with_space["rmse"], "rmse_mean_only": mean_only,
                                    "rmse_per_photo": dict(zip(held_out, map(float, with_space["rmse_per_map"])))}
    stages.update(1)
    stages.close()
    del maps, confidence, completed, basis_out
    if not options.keep_stacks:
        for name in ("maps.npy", "maps_confidence.npy", "completed.npy", "basis.npy"):
            (round_dir / name).unlink(missing_ok=True)
    report["seconds_space"] = round(time.time() - started, 2)
    write_json(folder.round_report(round_index), report)
    return report


def _fit_errors(records: dict, used: list[str]) -> dict:
    photometric = [records[n]["photometric_error"] for n in used]
    landmarks = [records[n]["landmark_error_px"] for n in used]
    return {"photometric_error_mean": float(np.mean(photometric)),
            "landmark_error_px_mean": float(np.mean(landmarks))}


# -- reports -----------------------------------------------------------------------------------
def summary_text(rounds: list[dict], photos: int) -> str:
    """A human-readable account of the rounds (``summary.txt``)."""
    lines = [f"texture space built from {photos} photo(s) in {len(rounds)} round(s)", ""]
    for report in rounds:
        lines.append(f"round {report['round']}: {report['n_train']} training + {report['n_holdout']} held-out photos, "
                     f"{len(report['skipped'])} skipped, {report['n_components']} components ({report['pca_method']} PCA, "
                     f"{report['completion']} completion)")
        lines.append("  compactness (variance explained by the first k): "
                     + ", ".join(f"k={k}: {100 * v:.1f}%" for k, v in report["compactness"].items()))
        gen = report.get("generalisation")
        if gen:
            lines.append(f"  generalisation (held-out visible texels, RMSE): space {gen['rmse_space']:.4f} vs "
                         f"mean alone {gen['rmse_mean_only']:.4f}")
        else:
            lines.append("  generalisation: not measured (fewer than 5 usable photos)")
        fit = report["fit"]
        lines.append(f"  fitting error: photometric {fit['photometric_error_mean']:.4f}, "
                     f"landmarks {fit['landmark_error_px_mean']:.2f} px (crop)")
    if rounds and rounds[-1]["skipped"]:
        lines += ["", "skipped photos (last round):"]
        lines += [f"  {name}: {reason}" for name, reason in sorted(rounds[-1]["skipped"].items())]
    return "\n".join(lines) + "\n"


def _copy_atomic(source: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temp)
    os.replace(temp, target)


# -- the pipeline ------------------------------------------------------------------------------
def fit_results(fits_dir: str | Path) -> tuple[list[tuple[Path, str]], dict[str, dict | None]]:
    """The ``flamefit fit`` results under ``fits_dir`` (nested ids included):
    ``[(photo, id)]`` (the photo its ``report.json`` names, absolute; the result folder relative
    to ``fits_dir``) and ``id -> report`` (None without a report).

    Raises:
        InputError: not a folder, or no result folders in it.
    """
    from flamefit.fitting.results import find_results, read_report

    fits_dir = Path(fits_dir)
    if not fits_dir.is_dir():
        raise InputError(fits_dir, "--from-fits must be the output folder of `flamefit fit`")
    photos, reports = [], {}
    for result in find_results(fits_dir):
        name = result.relative_to(fits_dir).as_posix()
        report = read_report(result)
        photo = Path(report["input"]) if report and report.get("input") else result
        if not photo.is_absolute():  # reports before schema 1 held the path as typed
            photo = (Path.cwd() / photo) if (Path.cwd() / photo).exists() else fits_dir.parent / photo
        photos.append((photo, name))
        reports[name] = report
    if not photos:
        raise InputError(fits_dir, "no `flamefit fit` results (<id>/report.json) in this folder")
    return photos, reports


def build_texture_space(
    inputs: list[str | Path],
    out_dir: str | Path,
    options: BuildOptions | None = None,
    *,
    on_photo: PhotoCallback | None = None,
    show_progress: bool = True,
    photos: list[tuple[Path, str]] | None = None,
    fit_round: RoundRunner | None = None,
) -> BuildSummary:
    """Build an albedo space from the photos in ``inputs`` (files, folders, globs) into ``out_dir``.

    With ``options.from_fits`` the photos are those of the ``flamefit fit`` results there
    (``inputs`` must be empty) and round 0 unwraps them with the fitted parameters.

    Resumable: a rerun with the same settings skips finished rounds and, in the current round,
    photos that already have a record. Writes ``DIR/texture_space.npz`` (the last round's),
    ``rounds.json`` and ``summary.txt`` (see :mod:`flamefit.texture_space.state`).

    Args:
        inputs: photos (files, folders of images, glob patterns); empty with ``from_fits``.
        out_dir: the build folder.
        options: :class:`BuildOptions`.
        on_photo: called as ``on_photo(round, name, record)`` after each photo is recorded.
        show_progress: tqdm bars per stage.
        photos: ``[(photo file, name)]`` instead of ``inputs`` (a dataset listed by the caller).
        fit_round: who runs stage 1 of each round (default: a :class:`RoundFitter` here).

    Returns:
        :class:`BuildSummary`.

    Raises:
        InputError: no photos (or fits), photos and ``from_fits`` together, or too few usable
            photos for a space.
        UsageError: bad options, missing inputs, or the folder holds a build made with other fixed
            settings (which, and how to start over).
    """
    from flamefit.fitting.plan import collect_photos
    from flamefit.texture_space.choices import BOOTSTRAPS

    options = options or BuildOptions()
    if options.rounds < 1 or options.components < 1:
        raise UsageError(f"--rounds and --components must be at least 1, got {options.rounds} and {options.components}")
    if options.bootstrap not in BOOTSTRAPS:
        raise UsageError(f"--bootstrap must be one of {', '.join(BOOTSTRAPS)}, got {options.bootstrap!r}")
    out_dir = Path(out_dir)
    fits = None
    if photos is not None:
        if inputs or options.from_fits is not None:
            raise UsageError("give photos, inputs or --from-fits, one of them")
        if not photos:
            raise UsageError("no photos given")
    elif options.from_fits is not None:
        if inputs:
            raise InputError(None, "give photos or --from-fits, not both: with --from-fits the photos are "
                                   "the ones its fits were made from")
        photos, fits = fit_results(options.from_fits)
    else:
        if not inputs:
            raise UsageError("no photos given; pass image files, folders or glob patterns (or --from-fits)")
        photos = [(photo.path, photo.id) for photo in collect_photos(inputs)]
    device = resolve_device(options.device)
    with folder_lock(out_dir):
        return _build(photos, fits, out_dir, options, device, on_photo, show_progress, fit_round)


def _build(photos, fits, out_dir: Path, options: BuildOptions, device, on_photo, show_progress,
           fit_round: RoundRunner | None) -> BuildSummary:
    model = _load_model(options, device)
    fit_round = fit_round or RoundFitter(out_dir, options, device, model, on_photo, show_progress)
    folder = BuildFolder(out_dir)
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()}
    settings["model"] = model.files.describe()
    check_settings(folder, settings)

    rounds: list[dict] = []
    space = Path(options.init_space) if options.init_space else None
    for round_index in range(options.rounds):
        report = folder.finished_round(round_index)
        if report is None:
            fit_round(round_index, space, photos, fits)
            report = _build_round_space(folder, model, options, round_index, photos, show_progress)
        else:
            log.info("round %d already finished; reusing %s", round_index, folder.space_file(round_index))
        rounds.append(report)
        space = folder.space_file(round_index)
        write_json(out_dir / "rounds.json", {"rounds": rounds})
        write_text(out_dir / "summary.txt", summary_text(rounds, len(photos)))
    final = out_dir / "texture_space.npz"
    _copy_atomic(space, final)
    last = rounds[-1]
    used = [name for _, name in photos if name not in last["skipped"]]
    return BuildSummary(out_dir=out_dir, space_path=final, rounds=rounds, used=used, skipped=dict(last["skipped"]))
