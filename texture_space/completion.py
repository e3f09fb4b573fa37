"""Complete the texels of UV albedo maps that no photo saw.

Inputs everywhere: ``maps (N, H, W, 3)`` RGB in [0, 1] (array or memory map) and ``confidence
(N, H, W)`` in [0, 1], 0 = unseen, (0, 1] = how much the texel's colour is trusted. Seen texels
are never changed; only unseen ones are filled.

Each step below fills what it can and returns ``(maps, confidence)`` with the filled texels
given ``fill_confidence`` (times the source's confidence where there is one), so the steps
chain; :func:`complete_textures` runs a method (a step or the combined chain) and inpaints
whatever is left, returning complete maps:

* ``"mean"`` — :func:`fill_with_mean`: per texel, the confidence-weighted mean over the photos
  that saw it (the baseline).
* ``"symmetry"`` — :func:`fill_from_mirror`: the colour of the mirror texel
  (:func:`flamefit.texture_space.mirror.mirror_texel_map`) of the same photo, where that was seen.
* ``"pca"`` — :func:`fill_low_rank`: low-rank imputation (EM for weighted low-rank
  approximation): alternately fill unseen values from a rank-``k`` PCA reconstruction of the
  current complete matrix and re-estimate the PCA, until the filled values stop changing.
* ``"inpaint"`` — inpainting from neighbouring texels only (:mod:`flamefit.texture_space.inpainting`).
* ``"combined"`` (default) — symmetry, then PCA imputation, then inpainting.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Literal

import numpy as np
import scipy.linalg

from flamefit.texture_space.choices import COMPLETION_METHODS
from flamefit.texture_space.inpainting import InpaintMethod, inpaint_maps
from flamefit.texture_space.texel_source import as_texel_source, block_ranges

CompletionMethod = Literal["mean", "symmetry", "pca", "inpaint", "combined"]

log = logging.getLogger(__name__)


def _check_inputs(maps: np.ndarray, confidence: np.ndarray) -> None:
    if maps.ndim != 4 or maps.shape[3] != 3:
        raise ValueError(f"maps have shape {maps.shape}, expected (N, H, W, 3).")
    if confidence.shape != maps.shape[:3]:
        raise ValueError(f"confidence has shape {confidence.shape}, expected {maps.shape[:3]} to match the maps.")


def _map_chunks(n_maps: int, height: int, width: int, chunk_mb: float) -> list[slice]:
    """Slices of whole maps whose float64 ``(n, H, W, 3)`` takes about ``chunk_mb``."""
    per_chunk = max(1, int(chunk_mb * 2**20) // (height * width * 3 * 8))
    return [slice(start, min(start + per_chunk, n_maps)) for start in range(0, n_maps, per_chunk)]


def _as_float_maps(maps: np.ndarray, out: np.ndarray | None, chunk_mb: float = 64.0) -> np.ndarray:
    """``out`` (or a new float32 array) holding ``maps`` scaled to [0, 1], copied block by block."""
    target = np.empty(maps.shape, dtype=np.float32) if out is None else out
    if target.shape != maps.shape or target.dtype != np.float32:
        raise ValueError(f"out is {target.dtype} {target.shape}, expected float32 {maps.shape}.")
    if target is maps:
        return target
    source = as_texel_source(maps)
    flat = target.reshape(maps.shape[0], -1)
    for start, stop in block_ranges(source.n_values, maps.shape[0], chunk_mb):
        flat[:, start:stop] = source.read(start, stop, np.dtype(np.float32))
    return target


def _scratch_like(array: np.ndarray, folder: str | None) -> np.ndarray:
    """An uninitialised float32 array shaped like ``array``: a memory map in ``folder`` if given.

    The file is unlinked at once (POSIX keeps it until the map is released).
    """
    if folder is None:
        return np.empty(array.shape, dtype=np.float32)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".completion_state.", suffix=".npy") as handle:
        return np.lib.format.open_memmap(handle.name, mode="w+", dtype=np.float32, shape=array.shape)


def texel_mean(maps: np.ndarray, confidence: np.ndarray, chunk_mb: float = 64.0) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted mean of each texel over the maps that saw it.

    Returns:
        ``mean (H, W, 3)`` float64 (0 where no map saw the texel) and ``total_weight (H, W)``.
    """
    _check_inputs(maps, confidence)
    n_maps, height, width, _ = maps.shape
    total_weight = np.zeros(height * width, dtype=np.float64)
    weighted_sum = np.zeros((height * width, 3), dtype=np.float64)
    source = as_texel_source(maps)
    flat_confidence = confidence.reshape(n_maps, -1)
    for start, stop in block_ranges(source.n_values, n_maps, chunk_mb):
        texels = slice(start // 3, stop // 3)
        weight = np.asarray(flat_confidence[:, texels], dtype=np.float64)
        values = source.read(start, stop, np.dtype(np.float64)).reshape(n_maps, -1, 3)
        total_weight[texels] = weight.sum(axis=0)
        weighted_sum[texels] = np.einsum("nt,ntc->tc", weight, values)
    mean = weighted_sum / np.maximum(total_weight, 1e-300)[:, None]
    return mean.reshape(height, width, 3), total_weight.reshape(height, width)


def fill_with_mean(
    maps: np.ndarray,
    confidence: np.ndarray,
    *,
    fill_confidence: float = 0.1,
    chunk_mb: float = 64.0,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill each unseen texel with the confidence-weighted mean of the photos that saw it.

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1]; confidence: ``(N, H, W)``, 0 = unseen.
        fill_confidence: confidence given to the filled texels.
        chunk_mb: working-memory block size (MiB).
        out: optional float32 ``(N, H, W, 3)`` array (e.g. a memory map) for the result.

    Returns:
        ``(maps (N, H, W, 3) float32, confidence (N, H, W) float32)``; texels no photo saw stay
        unseen (confidence 0).
    """
    mean, total_weight = texel_mean(maps, confidence, chunk_mb)
    filled = _as_float_maps(maps, out, chunk_mb)
    confidence = np.array(confidence, dtype=np.float32)
    fillable = (confidence == 0) & (total_weight > 0)[None]
    for chunk in _map_chunks(len(filled), *maps.shape[1:3], chunk_mb):
        hole = fillable[chunk]
        filled[chunk] = np.where(hole[..., None], mean[None].astype(np.float32), filled[chunk])
        confidence[chunk][hole] = fill_confidence
    return filled, confidence


def fill_from_mirror(
    maps: np.ndarray,
    confidence: np.ndarray,
    mirror_map: np.ndarray,
    *,
    fill_confidence: float = 0.5,
    chunk_mb: float = 64.0,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill each unseen texel from its mirror texel in the same map, where that was seen.

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1]; confidence: ``(N, H, W)``, 0 = unseen.
        mirror_map: ``(H, W)`` flat index of the mirror texel, -1 where there is none (from
            :func:`flamefit.texture_space.mirror.mirror_texel_map`).
        fill_confidence: factor on the mirror texel's confidence given to the filled texel
            (faces are not perfectly symmetric, nor is their lighting).
        chunk_mb, out: as in :func:`fill_with_mean`.

    Returns:
        ``(maps (N, H, W, 3) float32, confidence (N, H, W) float32)``.
    """
    _check_inputs(maps, confidence)
    n_maps, height, width, _ = maps.shape
    if mirror_map.shape != (height, width):
        raise ValueError(f"mirror_map has shape {mirror_map.shape}, expected {(height, width)}.")
    filled = _as_float_maps(maps, out, chunk_mb)
    confidence = np.array(confidence, dtype=np.float32)
    mirror = mirror_map.reshape(-1)
    has_mirror = mirror >= 0
    source_texel = np.where(has_mirror, mirror, 0)
    for chunk in _map_chunks(n_maps, height, width, chunk_mb):
        flat_maps = filled[chunk].reshape(-1, height * width, 3)
        flat_conf = confidence[chunk].reshape(-1, height * width)
        mirror_conf = flat_conf[:, source_texel] * has_mirror
        hole = (flat_conf == 0) & (mirror_conf > 0)
        flat_maps = np.where(hole[..., None], flat_maps[:, source_texel], flat_maps)
        filled[chunk] = flat_maps.reshape(-1, height, width, 3)
        confidence[chunk] = np.where(hole, fill_confidence * mirror_conf, flat_conf).reshape(-1, height, width)
    return filled, confidence


def _shrunk_projector(gram: np.ndarray, rank: int, ridge: float, n_values: int) -> np.ndarray:
    """``(N, N)`` ``U_k diag(l_k / (l_k + r)) U_kᵀ`` from the Gram matrix of centred data.

    ``U_k`` are its top ``rank`` eigenvectors and ``l_k = s_k² / (N - 1)`` the component
    variances. Applied to the centred data it gives the rank-``k`` reconstruction with each
    component shrunk like a ridge-regularised coefficient. ``r = ridge * D / (N - 1)`` is the
    variance that noise of variance ``ridge`` per value puts on any direction of the
    ``N``-sample space when ``D >> N``: components at the noise level are halved, strong ones
    kept, which stops a rank chosen too high from fitting the imputed values to noise.
    """
    n_maps = gram.shape[0]
    eigenvalues, vectors = scipy.linalg.eigh(gram, subset_by_index=(n_maps - rank, n_maps - 1))
    variance = np.clip(eigenvalues, 0.0, None) / (n_maps - 1)
    noise_level = ridge * n_values / (n_maps - 1)
    shrink = variance / (variance + noise_level) if ridge > 0 else (variance > 0).astype(np.float64)
    return (vectors * shrink) @ vectors.T


def fill_low_rank(
    maps: np.ndarray,
    confidence: np.ndarray,
    *,
    rank: int = 10,
    ridge: float = 1e-4,
    n_iterations: int = 100,
    tolerance: float = 1e-4,
    fill_confidence: float = 0.1,
    chunk_mb: float = 64.0,
    out: np.ndarray | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Impute unseen texels from a low-rank PCA model fitted to the incomplete maps.

    EM for weighted low-rank approximation: the state ``Z`` starts as the observed values,
    unseen ones set to the texel mean; each iteration computes the PCA of ``Z`` (mean ``m``,
    top ``rank`` components) and sets ``Z <- w X + (1 - w) (m + P (Z - m))`` with ``w`` the
    confidence and ``P`` the ridge-shrunk rank-``rank`` projector in sample space (see
    :func:`_shrunk_projector`). One streaming pass per iteration updates ``Z`` and accumulates
    the next Gram matrix; memory is ``N²`` plus texel blocks plus ``Z`` itself (``out``).

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1]; confidence: ``(N, H, W)``, 0 = unseen.
        rank: number of components ``k`` of the model (capped at ``N - 1``).
        ridge: noise variance per value (albedo units²); component ``j`` of variance ``l_j``
            is shrunk by ``l_j / (l_j + ridge * D / (N - 1))``; 0 = plain truncation.
        n_iterations: most EM iterations.
        tolerance: stop when the RMS change of the unseen values in an iteration is below this.
        fill_confidence: confidence given to imputed texels.
        chunk_mb: working-memory block size (MiB).
        out: optional float32 ``(N, H, W, 3)`` array (e.g. a memory map) holding ``Z`` and then
            the result; it must not overlap ``maps``.
        device: ``None`` streams blocks through NumPy as above. A torch device (``"cuda"``)
            holds the whole stack there instead and runs the same iterations in float64 as a
            few large products each (:func:`_low_rank_em_torch`). Each iteration costs about
            ``2 N² D`` flops: for 1500 maps of 256² the NumPy passes did not finish in 5 minutes
            on 16 CPU cores, while a whole 1500-photo build completed and took its PCA in under
            2 minutes on an H100. When the stack does not fit in the device's free memory, the
            streaming path runs (and says so in the log).

    Returns:
        ``(maps (N, H, W, 3) float32, confidence (N, H, W) float32)``: seen texels unchanged,
        texels that at least one map saw imputed; texels no map saw stay unseen.
    """
    if out is not None and np.may_share_memory(out, maps):
        raise ValueError("out must not share memory with maps: the observed values are re-read every iteration.")
    mean, total_weight = texel_mean(maps, confidence, chunk_mb)
    n_maps, height, width, _ = maps.shape
    rank = max(1, min(rank, n_maps - 1))
    source = as_texel_source(maps)
    state = _as_float_maps(maps, out, chunk_mb)
    flat_state = state.reshape(n_maps, -1)
    flat_conf = confidence.reshape(n_maps, -1)
    flat_mean = mean.reshape(-1)
    ranges = block_ranges(source.n_values, n_maps, chunk_mb)

    def weights(start: int, stop: int) -> np.ndarray:
        return np.repeat(np.clip(np.asarray(flat_conf[:, start // 3 : stop // 3], dtype=np.float64), 0.0, 1.0), 3, axis=1)

    imputed = (np.asarray(confidence) == 0) & (total_weight > 0)[None]
    imputed_count = max(int(imputed.sum()) * 3, 1)
    if device is not None and _fits_on_device(n_maps, source.n_values, device):
        flat_state[:] = _low_rank_em_torch(
            source.read(0, source.n_values, np.dtype(np.float32)), np.asarray(flat_conf, dtype=np.float32),
            flat_mean, rank, ridge, n_iterations, tolerance, imputed_count, device,
        )
    else:
        _low_rank_em_streaming(source, flat_state, weights, flat_mean, ranges, rank, ridge, n_iterations,
                               tolerance, imputed_count)
    confidence = np.array(confidence, dtype=np.float32)
    for start, stop in ranges:  # seen texels get their observed values back
        w = weights(start, stop)
        observed = source.read(start, stop, np.dtype(np.float32))
        flat_state[:, start:stop] = np.where(w > 0, observed, flat_state[:, start:stop])
    confidence[imputed] = fill_confidence
    return state, confidence


def _low_rank_em_streaming(source, flat_state, weights, flat_mean, ranges, rank, ridge, n_iterations,
                           tolerance, imputed_count) -> None:
    """The EM of :func:`fill_low_rank`, one streaming pass over texel blocks per iteration;
    ``flat_state (N, D)`` ends as the last iterate."""
    n_maps = flat_state.shape[0]
    gram = np.zeros((n_maps, n_maps))
    for start, stop in ranges:  # initial state: observed values blended with the texel mean
        w = weights(start, stop)
        block = w * source.read(start, stop, np.dtype(np.float64)) + (1.0 - w) * flat_mean[start:stop]
        flat_state[:, start:stop] = block
        centred = block - block.mean(axis=0)
        gram += centred @ centred.T
    for _ in range(n_iterations):
        projector = _shrunk_projector(gram, rank, ridge, source.n_values)
        gram = np.zeros((n_maps, n_maps))
        squared_change = 0.0
        for start, stop in ranges:
            w = weights(start, stop)
            block = flat_state[:, start:stop].astype(np.float64)
            block_mean = block.mean(axis=0)
            reconstruction = block_mean + projector @ (block - block_mean)
            updated = w * source.read(start, stop, np.dtype(np.float64)) + (1.0 - w) * reconstruction
            squared_change += float((((updated - block) * (w == 0)) ** 2).sum())
            flat_state[:, start:stop] = updated
            centred = updated - updated.mean(axis=0)
            gram += centred @ centred.T
        if np.sqrt(squared_change / imputed_count) < tolerance:
            break


def _fits_on_device(n_maps: int, n_values: int, device) -> bool:
    """Whether :func:`_low_rank_em_torch` fits in ``device``'s free memory (about six float64
    copies of the stack are alive at once)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    needed = 6 * 8 * n_maps * n_values
    if needed < 0.9 * free:
        return True
    log.warning("PCA imputation: %d maps need about %.1f GiB on %s, %.1f GiB are free; streaming them "
                "through NumPy on the CPU instead (slow for many maps)", n_maps, needed / 2**30, device, free / 2**30)
    return False


def _low_rank_em_torch(values, conf, flat_mean, rank, ridge, n_iterations, tolerance, imputed_count, device) -> np.ndarray:
    """The EM of :func:`fill_low_rank` with the whole stack on a torch device, in float64.

    Args:
        values: ``(N, D)`` float32 observed values (``D = 3 T``); conf: ``(N, T)`` confidence;
        flat_mean: ``(D,)`` confidence-weighted texel mean; the rest as in :func:`fill_low_rank`.

    Returns:
        ``(N, D)`` float32, the last iterate (seen texels are restored by the caller).
    """
    import torch

    n_maps, n_values = values.shape
    x = torch.as_tensor(values, device=device).double().view(n_maps, -1, 3)  # (N, T, 3)
    w = torch.as_tensor(conf, device=device).double().clamp_(0.0, 1.0)[..., None]  # (N, T, 1)
    unseen = (w == 0).double()
    mean = torch.as_tensor(flat_mean, device=device).view(-1, 3)
    state = torch.lerp(mean.expand_as(x), x, w)  # observed values blended with the texel mean
    for _ in range(n_iterations):
        state_mean = state.mean(dim=0)
        centred = (state - state_mean).view(n_maps, -1)
        gram = (centred @ centred.T).cpu().numpy()
        projector = torch.as_tensor(_shrunk_projector(gram, rank, ridge, n_values), device=device)
        updated = (projector @ centred).view_as(state).add_(state_mean)  # the reconstruction...
        del centred
        updated.lerp_(x, w)  # ...where unseen, the observation where seen (weighted)
        change = (updated - state).mul_(unseen)
        squared_change = float(change.square_().sum())
        del change
        state = updated
        if np.sqrt(squared_change / imputed_count) < tolerance:
            break
    return state.view(n_maps, n_values).float().cpu().numpy()


def inpaint_unseen(
    maps: np.ndarray,
    confidence: np.ndarray,
    *,
    method: InpaintMethod = "diffusion",
    chunk_mb: float = 64.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Fill every unseen texel (confidence 0) from its neighbours in the same map.

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1]; confidence: ``(N, H, W)``, 0 = unseen.
        method: ``"diffusion"`` (batched multigrid membrane fill), ``"telea"`` or ``"ns"``
            (``cv2.inpaint``); see :mod:`flamefit.texture_space.inpainting`.
        chunk_mb, out: as in :func:`fill_with_mean`.

    Returns:
        ``(N, H, W, 3)`` float32 complete maps (a map no photo saw at all becomes zeros).
    """
    _check_inputs(maps, confidence)
    filled = _as_float_maps(maps, out, chunk_mb)
    for chunk in _map_chunks(len(filled), *maps.shape[1:3], chunk_mb):
        known = np.asarray(confidence[chunk]) > 0
        filled[chunk] = inpaint_maps(filled[chunk], known, method)
    return filled


def complete_textures(
    maps: np.ndarray,
    confidence: np.ndarray,
    method: CompletionMethod = "combined",
    *,
    mirror_map: np.ndarray | None = None,
    rank: int = 10,
    ridge: float = 1e-4,
    n_iterations: int = 100,
    tolerance: float = 1e-4,
    inpaint_method: InpaintMethod = "diffusion",
    chunk_mb: float = 64.0,
    out: np.ndarray | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Complete UV albedo maps: fill unseen texels by ``method``, inpaint what is left.

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1] (array or memory map; uint8 is scaled).
        confidence: ``(N, H, W)`` in [0, 1], 0 = unseen.
        method: ``"mean"``, ``"symmetry"``, ``"pca"``, ``"inpaint"`` or ``"combined"``
            (symmetry -> PCA imputation -> inpainting); see the module docstring.
        mirror_map: ``(H, W)`` mirror texel indices; required by ``"symmetry"``; for
            ``"combined"`` the symmetry step is skipped when it is None.
        rank, ridge, n_iterations, tolerance: of the PCA imputation (:func:`fill_low_rank`).
        inpaint_method: ``"diffusion"``, ``"telea"`` or ``"ns"`` for the last step.
        chunk_mb: working-memory block size (MiB).
        out: optional float32 ``(N, H, W, 3)`` array (e.g. a memory map) for the result.
        device: torch device for the PCA imputation (``"cuda"`` for large stacks), or None to
            stream it through NumPy; see :func:`fill_low_rank`.

    Returns:
        ``(N, H, W, 3)`` float32 complete maps; seen texels unchanged.

    Raises:
        ValueError: unknown method, mismatched shapes, or ``"symmetry"`` without a mirror map.
    """
    _check_inputs(maps, confidence)
    steps: list[str] = {
        "mean": ["mean"],
        "symmetry": ["symmetry"],
        "pca": ["pca"],
        "inpaint": [],
        "combined": (["symmetry"] if mirror_map is not None else []) + ["pca"],
    }.get(method)  # type: ignore[assignment]
    if steps is None:
        raise ValueError(f"unknown completion method {method!r}; use one of {', '.join(COMPLETION_METHODS)}.")
    if "symmetry" in steps and mirror_map is None:
        raise ValueError("the symmetry method needs a mirror_map (texture_space.mirror.mirror_texel_map).")
    current, weights = maps, confidence
    for step in steps:
        if step == "mean":
            current, weights = fill_with_mean(current, weights, chunk_mb=chunk_mb, out=out)
        elif step == "symmetry":
            current, weights = fill_from_mirror(current, weights, mirror_map, chunk_mb=chunk_mb, out=out)
        else:
            # The imputation re-reads its input every iteration, so its state cannot live in
            # `out` when an earlier step already wrote there: use a scratch array (a memory map
            # next to `out` when `out` is one) and copy the result back.
            in_place = out is not None and current is out
            folder = os.path.dirname(out.filename) if in_place and isinstance(out, np.memmap) and out.filename else None
            state = _scratch_like(current, folder) if in_place else out
            current, weights = fill_low_rank(
                current, weights, rank=rank, ridge=ridge, n_iterations=n_iterations,
                tolerance=tolerance, chunk_mb=chunk_mb, out=state, device=device,
            )
            if in_place:
                current = _as_float_maps(current, out, chunk_mb)
                del state
    return inpaint_unseen(current, weights, method=inpaint_method, chunk_mb=chunk_mb, out=out)
