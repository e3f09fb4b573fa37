"""Measures of a texture space and of texture completion.

* :func:`blob_mask` / :func:`hide_blobs`: random blobby occlusions (thresholded smooth noise),
  as real occlusions (hair, hands, glasses, self-occlusion) are blobs, not single texels.
* :func:`completion_errors`: hide blobs of the visible texels, complete, RMSE on the hidden.
* :func:`compactness`: fraction of the variance the first ``k`` components explain.
* :func:`generalisation`: how well a space reconstructs held-out maps from their visible
  texels (ridge-regularised least squares on the unit-variance coefficients).
* :func:`principal_angles`: angles between the subspaces spanned by two bases.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import scipy.linalg
from scipy.ndimage import gaussian_filter

from flamefit.flame.model_data import TextureSpace
from flamefit.texture_space.completion import complete_textures

CompletionFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``complete(maps (N, H, W, 3), confidence (N, H, W)) -> (N, H, W, 3)``."""


def blob_mask(
    shape: tuple[int, int, int],
    fraction: float,
    blob_size: float,
    rng: np.random.Generator,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """Random blobs covering ``fraction`` of each map's ``region``.

    Args:
        shape: ``(N, H, W)``.
        fraction: share of the region's texels inside blobs, per map, in [0, 1].
        blob_size: Gaussian smoothing sigma of the noise, in texels (blobs ~2-4x this across).
        rng: random generator.
        region: optional ``(N, H, W)`` bool; blobs are placed only there (default: everywhere).

    Returns:
        ``(N, H, W)`` bool, True inside a blob.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    noise = gaussian_filter(rng.standard_normal(shape), sigma=(0, blob_size, blob_size), mode="wrap")
    region = np.ones(shape, dtype=bool) if region is None else region.astype(bool)
    masked = np.where(region, noise, -np.inf).reshape(shape[0], -1)
    count = np.round(fraction * region.reshape(shape[0], -1).sum(axis=1)).astype(np.int64)
    order = np.argsort(-masked, axis=1)  # largest noise first: blobs are the noise's peaks
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None].repeat(shape[0], 0), axis=1)
    return (rank < count[:, None]).reshape(shape) & region


def hide_blobs(
    confidence: np.ndarray, fraction: float, blob_size: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hide blobs covering ``fraction`` of each map's visible texels.

    Args:
        confidence: ``(N, H, W)``, 0 = unseen.

    Returns:
        ``(confidence with the hidden texels set to 0, hidden (N, H, W) bool)``.
    """
    hidden = blob_mask(confidence.shape, fraction, blob_size, np.random.default_rng(seed), region=confidence > 0)
    return np.where(hidden, 0.0, confidence).astype(np.float32), hidden


def completion_errors(
    maps: np.ndarray,
    confidence: np.ndarray,
    methods: Mapping[str, CompletionFunction] | list[str],
    *,
    fraction: float = 0.2,
    blob_size: float = 3.0,
    seed: int = 0,
) -> dict[str, float]:
    """RMSE of each completion method on blobs of visible texels it was not shown.

    Args:
        maps: ``(N, H, W, 3)`` RGB in [0, 1], the truth at every visible texel.
        confidence: ``(N, H, W)``, 0 = unseen (these are neither hidden nor scored).
        methods: names for :func:`flamefit.texture_space.completion.complete_textures` (defaults for
            the other arguments), or ``{name: complete(maps, confidence) -> maps}``.
        fraction: share of each map's visible texels hidden.
        blob_size: blob scale in texels (see :func:`blob_mask`).
        seed: seed of the hidden blobs (the same for every method).

    Returns:
        ``{name: RMSE over the hidden texels and 3 channels}``, plus ``"hidden_fraction"``.
    """
    if not isinstance(methods, Mapping):
        methods = {name: (lambda m, c, name=name: complete_textures(m, c, name)) for name in methods}
    reduced, hidden = hide_blobs(confidence, fraction, blob_size, seed)
    truth = np.asarray(maps, dtype=np.float64)[hidden]
    errors = {"hidden_fraction": float(hidden.sum() / max((confidence > 0).sum(), 1))}
    for name, complete in methods.items():
        completed = np.asarray(complete(maps, reduced), dtype=np.float64)
        errors[name] = float(np.sqrt(np.mean((completed[hidden] - truth) ** 2)))
    return errors


def compactness(explained_variance: np.ndarray, k: int | np.ndarray, total_variance: float | None = None) -> float | np.ndarray:
    """Fraction of the total variance explained by the first ``k`` components.

    Args:
        explained_variance: ``(K,)`` component variances in decreasing order (or ratios).
        k: number of components, or an array of them for a curve.
        total_variance: the data's total variance; default the sum of ``explained_variance``
            (then ``compactness(.., K) == 1``).

    Returns:
        ``sum(explained_variance[:k]) / total_variance``, a float (or an array for array ``k``).
    """
    variance = np.asarray(explained_variance, dtype=np.float64)
    total = float(variance.sum()) if total_variance is None else float(total_variance)
    cumulative = np.concatenate([[0.0], np.cumsum(variance)]) / total
    result = cumulative[np.clip(np.asarray(k), 0, len(variance))]
    return float(result) if np.ndim(result) == 0 else result


def generalisation(
    space: TextureSpace,
    held_out_maps: np.ndarray,
    confidence: np.ndarray,
    *,
    ridge: float = 1e-4,
    n_components: int | None = None,
) -> dict[str, np.ndarray | float]:
    """Reconstruct held-out maps from their visible texels with a space; the error on those texels.

    Each map's coefficients solve ``min_c sum_t w_t ||x_t - mean_t - B_t c||² + ridge ||c||²``
    over its visible texels (``w`` = confidence), ``B`` the basis per unit-variance coefficient.

    Args:
        space: the texture space (``mean (H, W, 3)``, ``basis (H, W, 3, K)``).
        held_out_maps: ``(M, H, W, 3)`` RGB in [0, 1], not used to build the space.
        confidence: ``(M, H, W)``, 0 = unseen (not used, not scored).
        ridge: noise variance per value, the weight of the coefficients' prior.
        n_components: use only the first components (default all).

    Returns:
        ``{"rmse": overall RMSE over visible values, "rmse_per_map": (M,),
        "coefficients": (M, K)}``.
    """
    basis = np.asarray(space.basis, dtype=np.float64)
    k = basis.shape[3] if n_components is None else min(n_components, basis.shape[3])
    flat_basis = basis[..., :k].reshape(-1, 3, k)
    flat_mean = np.asarray(space.mean, dtype=np.float64).reshape(-1, 3)
    n_maps = held_out_maps.shape[0]
    coefficients = np.zeros((n_maps, k))
    squared = np.zeros(n_maps)
    counts = np.zeros(n_maps)
    for index in range(n_maps):
        weight = np.asarray(confidence[index], dtype=np.float64).reshape(-1)
        visible = weight > 0
        rows = flat_basis[visible].reshape(-1, k)
        residual = (np.asarray(held_out_maps[index], dtype=np.float64).reshape(-1, 3)[visible] - flat_mean[visible]).reshape(-1)
        w = np.repeat(weight[visible], 3)
        normal = rows.T @ (rows * w[:, None]) + ridge * np.eye(k)
        coefficients[index] = np.linalg.solve(normal, rows.T @ (w * residual))
        error = residual - rows @ coefficients[index]
        squared[index], counts[index] = float(error @ error), error.size
    return {
        "rmse": float(np.sqrt(squared.sum() / max(counts.sum(), 1))),
        "rmse_per_map": np.sqrt(squared / np.maximum(counts, 1)),
        "coefficients": coefficients,
    }


def principal_angles(basis_a: np.ndarray, basis_b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, largest first) between the spans of two bases.

    Args:
        basis_a: ``(H, W, 3, Ka)`` or ``(D, Ka)``; basis_b: ``(H, W, 3, Kb)`` or ``(D, Kb)``.

    Returns:
        ``(min(Ka, Kb),)`` angles from :func:`scipy.linalg.subspace_angles`.
    """
    a = np.asarray(basis_a, dtype=np.float64)
    b = np.asarray(basis_b, dtype=np.float64)
    return scipy.linalg.subspace_angles(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
