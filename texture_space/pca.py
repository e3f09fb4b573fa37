"""PCA of a stack of UV albedo maps with memory bounded by a block size, not by ``N * D``.

The maps form an ``(N, D)`` matrix ``X`` (``D = H * W * 3``) read in texel blocks (see
:mod:`flamefit.texture_space.texel_source`). Because the per-texel mean of a block needs only that
block, every quantity below is accumulated block by block in float64:

* :func:`pca_gram` forms the ``N x N`` Gram matrix ``G = Xc Xcᵀ`` of the centred data in one
  pass, eigendecomposes it, and forms the components ``Xcᵀ u_k`` in a second pass. Cost
  ``~N² D / 2`` multiply-adds; exact (up to rounding). Best when ``K`` is a sizeable part of ``N``.
* :func:`pca_randomized` sketches the range of ``Xc`` with a Gaussian test matrix, refines it
  with power iterations ``Y <- Xc (Xcᵀ Y)`` (never forming a ``D``-sized matrix), takes a
  Rayleigh-Ritz step in the ``N``-dimensional sample space and forms the components in a last
  pass. Cost ``~(2 q + 2) N (K + p) D``; faster than the Gram method when ``K + p << N / 4``.

Both return the space in the layout of :class:`flamefit.flame.model_data.TextureSpace`: ``basis_k =
sqrt(lambda_k) v_k`` with ``lambda_k`` the sample variance (``N - 1`` in the denominator), so
that the coefficients of the training maps have unit sample variance. Working memory is the
``N x N`` (or ``N x (K + p)``) matrices, a few ``(N, block)`` arrays and the output basis, which
can itself be a memory map (``basis_out``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.linalg

from flamefit.flame.model_data import TextureSpace
from flamefit.texture_space.texel_source import MapStack, TexelSource, as_texel_source, iter_blocks


@dataclass(frozen=True)
class PCAResult:
    """A linear albedo space learnt from ``N`` maps.

    Attributes:
        mean: ``(H, W, 3)`` float32 RGB mean albedo in [0, 1].
        basis: ``(H, W, 3, K)`` float32 RGB per unit coefficient, ``sqrt(lambda_k) v_k``
            (a memory map when ``basis_out`` was given).
        explained_variance: ``(K,)`` float64 ``lambda_k``, sample variance along component k.
        explained_variance_ratio: ``(K,)`` ``lambda_k`` over the total variance of the data.
        coefficients: ``(N, K)`` float64 coefficients of the training maps (unit sample variance).
        total_variance: sum of the per-value sample variances of the data.
        n_samples: ``N``.
        method: ``"gram"`` or ``"randomized"``.
    """

    mean: np.ndarray
    basis: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    coefficients: np.ndarray
    total_variance: float
    n_samples: int
    method: str

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[3])


def _check_components(source: TexelSource, n_components: int) -> int:
    if source.n_maps < 2:
        raise ValueError(f"PCA needs at least 2 maps, got {source.n_maps}.")
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    return min(n_components, source.n_maps - 1)


def _mean_centred(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, c)`` block -> (``(c,)`` float64 mean, centred block in the block's dtype)."""
    mean = block.mean(axis=0, dtype=np.float64)
    block -= mean.astype(block.dtype)
    return mean, block


def _basis_array(source: TexelSource, n_components: int, basis_out: np.ndarray | None) -> np.ndarray:
    """The ``(D, K)`` float32 array the components are written to (a view of ``basis_out``)."""
    shape = source.map_shape + (n_components,)
    if basis_out is None:
        return np.empty((source.n_values, n_components), dtype=np.float32)
    if basis_out.shape != shape or basis_out.dtype != np.float32:
        raise ValueError(f"basis_out is {basis_out.dtype} {basis_out.shape}, expected float32 {shape}.")
    return basis_out.reshape(source.n_values, n_components)


def _fix_signs(sample_vectors: np.ndarray) -> np.ndarray:
    """Flip each column of ``(N, K)`` so that its entry of largest magnitude is positive."""
    rows = np.abs(sample_vectors).argmax(axis=0)
    signs = np.sign(sample_vectors[rows, np.arange(sample_vectors.shape[1])])
    signs[signs == 0] = 1.0
    return sample_vectors * signs


def _finish(
    source: TexelSource,
    mean: np.ndarray,
    eigenvalues: np.ndarray,
    sample_vectors: np.ndarray,
    total_sum_squares: float,
    chunk_mb: float,
    dtype: np.dtype,
    basis_out: np.ndarray | None,
    method: str,
) -> PCAResult:
    """Second pass shared by both methods: components from the sample-space eigenvectors.

    Args:
        mean: ``(D,)`` float64 per-value mean.
        eigenvalues: ``(K,)`` descending eigenvalues ``s_k²`` of ``Xc Xcᵀ``.
        sample_vectors: ``(N, K)`` orthonormal eigenvectors ``u_k`` of ``Xc Xcᵀ``.
        total_sum_squares: ``sum(Xc²)``.
    """
    n_maps = source.n_maps
    # Directions without variance (data of lower rank than K) get a zero component and zero
    # coefficients, so that K is always min(n_components, N - 1) and the layout stays fixed.
    kept = eigenvalues > eigenvalues.max(initial=0.0) * 1e-12
    eigenvalues = np.where(kept, eigenvalues, 0.0)
    sample_vectors = _fix_signs(sample_vectors) * kept
    n_components = int(eigenvalues.shape[0])
    # basis_k = sqrt(lambda_k) v_k = sqrt(s_k² / (N - 1)) Xcᵀ u_k / s_k = Xcᵀ u_k / sqrt(N - 1)
    projector = (sample_vectors / np.sqrt(n_maps - 1)).astype(dtype)
    basis = _basis_array(source, n_components, basis_out)
    for start, stop, block in iter_blocks(source, chunk_mb, dtype):
        block -= mean[start:stop].astype(dtype)
        basis[start:stop] = block.T @ projector
    if isinstance(basis, np.memmap):
        basis.flush()
    variance = eigenvalues / (n_maps - 1)
    total_variance = total_sum_squares / (n_maps - 1)
    return PCAResult(
        mean=mean.reshape(source.map_shape).astype(np.float32),
        basis=basis.reshape(source.map_shape + (n_components,)),
        explained_variance=variance,
        explained_variance_ratio=variance / total_variance if total_variance > 0 else np.zeros_like(variance),
        coefficients=sample_vectors * np.sqrt(n_maps - 1),
        total_variance=float(total_variance),
        n_samples=n_maps,
        method=method,
    )


def pca_gram(
    maps: MapStack,
    n_components: int,
    *,
    chunk_mb: float = 64.0,
    dtype: np.dtype | type = np.float64,
    basis_out: np.ndarray | None = None,
) -> PCAResult:
    """Exact PCA of ``N`` UV maps through the ``N x N`` Gram matrix, in two streaming passes.

    Args:
        maps: ``(N, H, W, 3)`` RGB maps in [0, 1] (array or memory map) or a
            :class:`~flamefit.texture_space.texel_source.TexelSource`.
        n_components: ``K``; capped at ``N - 1``. Components beyond the numerical rank of the
            data come back as zeros with zero variance.
        chunk_mb: MiB of one float64 ``(N, block)`` texel block; peak working memory is about
            three blocks plus ``2 N²`` float64 plus the ``(D, K)`` float32 output.
        dtype: type of the per-block products (float64, or float32 for twice the speed at
            ~1e-6 relative accuracy); means and the running Gram matrix are always float64.
        basis_out: optional float32 ``(H, W, 3, min(K, N - 1))`` array to write the basis into
            (e.g. an ``np.lib.format.open_memmap``), so that the output need not fit in memory.

    Returns:
        :class:`PCAResult`; components sorted by decreasing variance, each signed so that the
        training map with the largest |coefficient| has a positive one.
    """
    source = as_texel_source(maps)
    n_components = _check_components(source, n_components)
    dtype = np.dtype(dtype)
    n_maps = source.n_maps
    mean = np.empty(source.n_values, dtype=np.float64)
    gram = np.zeros((n_maps, n_maps), dtype=np.float64)
    for start, stop, block in iter_blocks(source, chunk_mb, dtype):
        mean[start:stop], centred = _mean_centred(block)
        gram += centred @ centred.T
    eigenvalues, vectors = scipy.linalg.eigh(gram, subset_by_index=(n_maps - n_components, n_maps - 1))
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    return _finish(source, mean, eigenvalues, vectors[:, order], float(np.trace(gram)), chunk_mb, dtype, basis_out, "gram")


def _gram_times(source: TexelSource, mean: np.ndarray, matrix: np.ndarray, chunk_mb: float, dtype: np.dtype) -> np.ndarray:
    """One streaming pass: ``Xc (Xcᵀ matrix)`` for an ``(N, L)`` ``matrix``, float64 result."""
    result = np.zeros(matrix.shape, dtype=np.float64)
    cast = matrix.astype(dtype)
    through_gram = 2 * matrix.shape[1] >= matrix.shape[0]  # N² c beats 2 N L c multiply-adds
    for start, stop, block in iter_blocks(source, chunk_mb, dtype):
        block -= mean[start:stop].astype(dtype)
        result += (block @ block.T) @ cast if through_gram else block @ (block.T @ cast)
    return result


def pca_randomized(
    maps: MapStack,
    n_components: int,
    *,
    oversampling: int = 10,
    n_power_iterations: int = 2,
    seed: int = 0,
    chunk_mb: float = 64.0,
    dtype: np.dtype | type = np.float64,
    basis_out: np.ndarray | None = None,
) -> PCAResult:
    """Randomised PCA of ``N`` UV maps (range finder + power iterations), streaming.

    Passes over the data: one sketch ``Y = Xc Ω`` (``Ω`` Gaussian, drawn block by block, never
    held whole), ``n_power_iterations`` passes ``Y <- Xc (Xcᵀ orth(Y))`` (the last doubles as
    the Rayleigh-Ritz projection ``Qᵀ Xc Xcᵀ Q``), and one pass forming the components.

    Args:
        maps: ``(N, H, W, 3)`` RGB maps in [0, 1] (array or memory map) or a
            :class:`~flamefit.texture_space.texel_source.TexelSource`.
        n_components: ``K``; capped at ``N - 1`` (zeros beyond the numerical rank).
        oversampling: extra sketch columns ``p`` (``L = K + p``, capped at ``N``).
        n_power_iterations: ``q >= 1`` passes of ``Xc Xcᵀ``; 2 suits slowly decaying spectra.
        seed: seed of the Gaussian test matrix (the result also depends on ``chunk_mb``,
            which sets the order in which it is drawn).
        chunk_mb, dtype, basis_out: as in :func:`pca_gram`.

    Returns:
        :class:`PCAResult` (``method == "randomized"``).
    """
    source = as_texel_source(maps)
    n_components = _check_components(source, n_components)
    if n_power_iterations < 1:
        raise ValueError(f"n_power_iterations must be at least 1, got {n_power_iterations}.")
    dtype = np.dtype(dtype)
    n_maps = source.n_maps
    width = min(n_components + max(oversampling, 0), n_maps)
    rng = np.random.default_rng(seed)
    mean = np.empty(source.n_values, dtype=np.float64)
    sketch = np.zeros((n_maps, width), dtype=np.float64)
    total_sum_squares = 0.0
    for start, stop, block in iter_blocks(source, chunk_mb, dtype):
        mean[start:stop], centred = _mean_centred(block)
        total_sum_squares += float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
        sketch += centred @ rng.standard_normal((stop - start, width), dtype=np.float32).astype(dtype)
    for _ in range(n_power_iterations):
        basis_of_range, _ = np.linalg.qr(sketch)
        sketch = _gram_times(source, mean, basis_of_range, chunk_mb, dtype)
    projected = basis_of_range.T @ sketch
    eigenvalues, small_vectors = np.linalg.eigh((projected + projected.T) / 2.0)
    order = np.argsort(eigenvalues)[::-1][:n_components]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    sample_vectors = basis_of_range @ small_vectors[:, order]
    return _finish(source, mean, eigenvalues, sample_vectors, total_sum_squares, chunk_mb, dtype, basis_out, "randomized")


def texture_pca(
    maps: MapStack,
    n_components: int,
    method: Literal["gram", "randomized"] = "gram",
    **options: Any,
) -> PCAResult:
    """PCA of UV maps by ``method`` (``"gram"``: exact; ``"randomized"``: faster for small K).

    ``options`` go to :func:`pca_gram` or :func:`pca_randomized`.
    """
    if method == "gram":
        return pca_gram(maps, n_components, **options)
    if method == "randomized":
        return pca_randomized(maps, n_components, **options)
    raise ValueError(f"unknown PCA method {method!r}; use 'gram' or 'randomized'.")


def project_maps(mean: np.ndarray, basis: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of fully known maps in a space.

    Args:
        mean: ``(H, W, 3)``; basis: ``(H, W, 3, K)``; maps: ``(M, H, W, 3)`` RGB in [0, 1].

    Returns:
        ``(M, K)`` float64 coefficients ``argmin ||map - mean - basis c||²``.
    """
    flat_basis = basis.reshape(-1, basis.shape[-1]).astype(np.float64)
    residual = (np.asarray(maps, dtype=np.float64) - mean).reshape(len(maps), -1)
    return np.linalg.lstsq(flat_basis, residual.T, rcond=None)[0].T


def reconstruct_maps(mean: np.ndarray, basis: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``(M, H, W, 3)`` float32 maps ``mean + basis @ c`` for ``(M, K)`` coefficients."""
    return (mean[None] + np.einsum("hwck,mk->mhwc", basis, coefficients)).astype(np.float32)


def to_texture_space(
    result: PCAResult,
    vt: np.ndarray | None = None,
    ft: np.ndarray | None = None,
    **metadata: Any,
) -> TextureSpace:
    """Wrap a :class:`PCAResult` as a :class:`~flamefit.flame.model_data.TextureSpace`.

    The metadata always holds ``n_photos``, ``resolution``, ``explained_variance`` and
    ``explained_variance_ratio``, plus ``metadata``; save it with
    :func:`flamefit.flame.texture_space_io.save_texture_space`.
    """
    info = {
        "n_photos": result.n_samples,
        "resolution": result.mean.shape[0],
        "explained_variance": result.explained_variance,
        "explained_variance_ratio": result.explained_variance_ratio,
        "pca_method": result.method,
        **metadata,
    }
    return TextureSpace(mean=result.mean, basis=np.asarray(result.basis), vt=vt, ft=ft, metadata=info)
