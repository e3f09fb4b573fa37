"""Synthetic UV albedo data with a known answer, for tests and benchmarks.

* :func:`smooth_fields`: random smooth RGB fields ``(K, H, W, 3)`` (optionally left-right
  symmetric, i.e. equal under the column flip ``col -> W - 1 - col``, whose mirror map is
  :func:`column_flip_mirror_map`).
* :func:`sample_low_rank_maps`: maps ``mean + basis @ c + noise`` from a known space.
* :func:`blobby_confidence`: per-map confidences with blobby unseen regions, biased to one side
  per map as in a turned head, so the mirror side is often seen.
* :func:`wave_texel_source`: an arbitrarily large low-rank-plus-noise stack generated on the
  fly block by block (nothing of size ``N x D`` is ever held), for benchmarks.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from flamefit.texture_space.texel_source import TexelSource


def smooth_fields(count: int, resolution: int, rng: np.random.Generator, smoothness: float = 4.0, symmetric: bool = False) -> np.ndarray:
    """``(count, H, W, 3)`` float64 zero-mean smooth random fields with unit RMS, ``H = W = resolution``.

    ``smoothness`` is the Gaussian sigma in texels; ``symmetric`` makes each field equal to
    its column flip.
    """
    noise = rng.standard_normal((count, resolution, resolution, 3))
    fields = gaussian_filter(noise, sigma=(0, smoothness, smoothness, 0), mode="wrap")
    if symmetric:
        fields = 0.5 * (fields + fields[:, :, ::-1])
    fields -= fields.mean(axis=(1, 2, 3), keepdims=True)
    return fields / np.sqrt((fields**2).mean(axis=(1, 2, 3), keepdims=True))


def column_flip_mirror_map(resolution: int) -> np.ndarray:
    """``(H, W)`` flat mirror texel indices of a UV layout symmetric about its vertical midline."""
    row, col = np.divmod(np.arange(resolution * resolution), resolution)
    return (row * resolution + (resolution - 1 - col)).reshape(resolution, resolution)


def synthetic_space(
    resolution: int, rank: int, rng: np.random.Generator, symmetric: bool = False, decay: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """A known albedo space: ``mean (H, W, 3)`` skin-like in [0.2, 0.8] and ``basis (H, W, 3, rank)``.

    Component ``k`` is a smooth field of RMS ``0.06 * decay**k`` per value.
    """
    skin = np.array([0.62, 0.45, 0.38])
    mean = skin + 0.05 * smooth_fields(1, resolution, rng, 8.0, symmetric)[0]
    scale = 0.06 * decay ** np.arange(rank)
    basis = np.moveaxis(smooth_fields(rank, resolution, rng, 4.0, symmetric), 0, -1) * scale
    return mean, basis


def sample_low_rank_maps(
    mean: np.ndarray, basis: np.ndarray, n_maps: int, rng: np.random.Generator, noise: float = 0.005
) -> tuple[np.ndarray, np.ndarray]:
    """``(maps (N, H, W, 3) float32, coefficients (N, K))`` with unit-normal coefficients and i.i.d. noise."""
    coefficients = rng.standard_normal((n_maps, basis.shape[3]))
    maps = mean + np.einsum("hwck,nk->nhwc", basis, coefficients) + noise * rng.standard_normal((n_maps,) + mean.shape)
    return maps.astype(np.float32), coefficients


def blobby_confidence(
    n_maps: int, resolution: int, rng: np.random.Generator, unseen_fraction: float = 0.3, blob_size: float = 4.0
) -> np.ndarray:
    """``(N, H, W)`` float32 confidences: smooth values in (0.3, 1] where seen, 0 in blobby holes.

    About ``unseen_fraction`` of each map is unseen; the holes favour one random side per map
    (a head turned away), so a texel's mirror is more often seen than the texel itself.
    """
    noise = gaussian_filter(rng.standard_normal((n_maps, resolution, resolution)), sigma=(0, blob_size, blob_size), mode="wrap")
    noise /= noise.std(axis=(1, 2), keepdims=True)
    side = np.linspace(-1.0, 1.0, resolution)[None, None, :] * rng.choice([-1.0, 1.0], size=(n_maps, 1, 1))
    score = noise + 1.5 * side
    threshold = np.quantile(score.reshape(n_maps, -1), 1.0 - unseen_fraction, axis=1)[:, None, None]
    weight = 0.3 + 0.7 / (1.0 + np.exp(-(threshold - score) * 2.0))
    return np.where(score > threshold, 0.0, weight).astype(np.float32)


def _hash_uniform(x: np.ndarray) -> np.ndarray:
    """Deterministic float32 uniform values in [-0.5, 0.5) from uint32 indices (an integer
    hash, computed in place on ``x``)."""
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    uniform = x.astype(np.float32)
    uniform *= np.float32(2.0**-32)
    uniform -= np.float32(0.5)
    return uniform


def wave_texel_source(n_maps: int, resolution: int, rank: int = 16, noise: float = 0.02, seed: int = 0) -> TexelSource:
    """A stack of ``N`` albedo-like maps computed on demand, block by block.

    Maps are ``mean + sum_k c_nk b_k + noise`` with ``b_k`` smooth plane waves over the UV
    square (RMS ``0.05 * 0.85**k``), unit-normal ``c`` and a uniform hash noise of width
    ``noise``; a block costs ``O(N * block * rank)`` and is identical on every read. Only
    ``N x rank`` coefficients are stored.

    Returns:
        :class:`TexelSource` of shape ``(N, resolution, resolution, 3)``.
    """
    if n_maps * resolution * resolution * 3 >= 2**32:
        raise ValueError("the hash noise indexes values with uint32; use fewer or smaller maps.")
    rng = np.random.default_rng(seed)
    coefficients = rng.standard_normal((n_maps, rank)).astype(np.float32)
    frequency = rng.uniform(-3.0, 3.0, size=(rank, 2))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(rank, 3))
    amplitude = (0.05 * np.sqrt(2.0) * 0.85 ** np.arange(rank))[:, None]
    skin = np.array([0.62, 0.45, 0.38])
    n_values = resolution * resolution * 3
    map_offsets = (np.arange(n_maps, dtype=np.uint64) * np.uint64(n_values)).astype(np.uint32)

    def read(start: int, stop: int, dtype: np.dtype = np.float64) -> np.ndarray:
        value = np.arange(start, stop)
        texel, channel = np.divmod(value, 3)
        row, col = np.divmod(texel, resolution)
        u, v = (col + 0.5) / resolution, 1.0 - (row + 0.5) / resolution
        waves = amplitude * np.cos(2.0 * np.pi * (np.outer(frequency[:, 0], u) + np.outer(frequency[:, 1], v)) + phase[:, channel])
        block = coefficients @ waves.astype(np.float32)
        block += skin[channel].astype(np.float32)
        index = map_offsets[:, None] + value.astype(np.uint32)[None]  # n * D + value < 2**32
        uniform = _hash_uniform(index)
        uniform *= np.float32(noise)
        block += uniform
        del index, uniform
        return block.astype(dtype, copy=False)

    return TexelSource(n_maps=n_maps, map_shape=(resolution, resolution, 3), read=read)
