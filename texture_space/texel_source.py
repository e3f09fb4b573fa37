"""Block access to a stack of UV maps seen as an ``(N, D)`` matrix, ``D = H * W * 3``.

Every algorithm of this package that touches all maps at once (PCA, completion by low-rank
imputation) reads the stack in *texel blocks*: all ``N`` maps, a contiguous range of the
flattened ``(H, W, 3)`` values. Within such a block the per-texel mean is local, so centring,
the Gram matrix ``X Xᵀ`` and the components can all be accumulated block by block and the
working memory is ``N * block`` values, never ``N * D``.

Three kinds of stacks are accepted wherever a "map stack" is asked for:

* an ``(N, H, W, 3)`` numpy array, in memory or memory-mapped (``np.load(..., mmap_mode="r")``
  of a ``.npy`` written by :func:`write_map_stack`); float values are RGB in [0, 1], ``uint8``
  and ``uint16`` values are scaled to [0, 1];
* a :class:`TexelSource`, i.e. any function that returns texel blocks on demand (maps
  generated on the fly, a store split over files ...).

A stream of *maps* (chunks of whole maps, as an unwrapping job produces them) is written once
to a ``.npy`` with :func:`write_map_stack` and then read in texel blocks from the memory map:
one sequential write, then every pass of every algorithm reads only what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import numpy as np

BlockReader = Callable[[int, int, np.dtype], np.ndarray]
"""``read(start, stop, dtype) -> (N, stop - start)`` flattened values ``start:stop`` of every map."""


@dataclass(frozen=True)
class TexelSource:
    """A stack of ``N`` UV maps ``(H, W, 3)`` that can be read in blocks of flattened values.

    Attributes:
        n_maps: ``N``.
        map_shape: ``(H, W, 3)``; row 0 is the top of the texture image (v = 1).
        read: ``read(start, stop, dtype) -> (N, stop - start)`` array of ``dtype`` holding the
            flattened ``(H, W, 3)`` values ``start:stop`` of every map, RGB in [0, 1]. Must
            return the same values every time it is called with the same range.
    """

    n_maps: int
    map_shape: tuple[int, int, int]
    read: BlockReader

    @property
    def n_values(self) -> int:
        """``D = H * W * 3``, the length of one flattened map."""
        height, width, channels = self.map_shape
        return height * width * channels


MapStack = Union[np.ndarray, TexelSource]
"""An ``(N, H, W, 3)`` array (possibly memory-mapped) or a :class:`TexelSource`."""


def _integer_scale(dtype: np.dtype) -> float | None:
    """The factor that brings stored values to [0, 1]: 1/255 for uint8, 1/65535 for uint16."""
    if np.issubdtype(dtype, np.floating):
        return None
    if dtype == np.uint8:
        return 1.0 / 255.0
    if dtype == np.uint16:
        return 1.0 / 65535.0
    raise TypeError(f"map stacks hold float, uint8 or uint16 values, not {dtype}; convert the maps first.")


def as_texel_source(maps: MapStack) -> TexelSource:
    """View an ``(N, H, W, 3)`` array (or memory map) as a :class:`TexelSource`.

    Args:
        maps: ``(N, H, W, 3)`` RGB maps (float in [0, 1], or uint8/uint16 scaled to [0, 1]),
            or a :class:`TexelSource`, returned unchanged.

    Returns:
        A source whose blocks are read from ``maps`` without copying the whole stack (a
        C-contiguous array or memory map is reshaped as a view).

    Raises:
        ValueError: ``maps`` is not ``(N, H, W, 3)``.
        TypeError: the values are neither float nor uint8/uint16.
    """
    if isinstance(maps, TexelSource):
        return maps
    if not isinstance(maps, np.ndarray):
        maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[3] != 3:
        raise ValueError(f"maps have shape {maps.shape}, expected (N, H, W, 3) RGB UV maps.")
    scale = _integer_scale(maps.dtype)
    flat = maps.reshape(maps.shape[0], -1)

    def read(start: int, stop: int, dtype: np.dtype = np.float64) -> np.ndarray:
        dtype = np.dtype(dtype)
        block = np.array(flat[:, start:stop], dtype=dtype)
        if scale is not None:
            block *= dtype.type(scale)
        return block

    return TexelSource(n_maps=int(maps.shape[0]), map_shape=tuple(int(s) for s in maps.shape[1:]), read=read)


def block_ranges(n_values: int, n_maps: int, chunk_mb: float, align: int = 3) -> list[tuple[int, int]]:
    """Split ``range(n_values)`` into blocks whose float64 ``(n_maps, block)`` array is ``chunk_mb``.

    Args:
        n_values: ``D``, the number of flattened values per map.
        n_maps: ``N``.
        chunk_mb: memory of one float64 block of all maps, in MiB (the working memory of the
            streaming algorithms is a small multiple of this).
        align: block boundaries fall on multiples of this (3: whole texels).

    Returns:
        ``[(start, stop), ...]`` covering ``0..n_values`` in order; always the same for the same
        arguments, so that every pass of an algorithm sees the same blocks.
    """
    if chunk_mb <= 0:
        raise ValueError(f"chunk_mb must be positive, got {chunk_mb}.")
    per_block = int(chunk_mb * 2**20) // (8 * max(n_maps, 1))
    per_block = max(align, per_block - per_block % align)
    return [(start, min(start + per_block, n_values)) for start in range(0, n_values, per_block)]


def iter_blocks(source: TexelSource, chunk_mb: float, dtype: np.dtype = np.float64) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, block (N, stop - start))`` over all texel blocks of ``source``."""
    for start, stop in block_ranges(source.n_values, source.n_maps, chunk_mb):
        yield start, stop, source.read(start, stop, np.dtype(dtype))


def write_map_stack(
    path: str | Path,
    chunks: Iterable[np.ndarray],
    n_maps: int,
    resolution: tuple[int, int],
    dtype: np.dtype | type = np.float32,
) -> Path:
    """Write a stream of map chunks to an ``(N, H, W, 3)`` ``.npy`` file, one chunk in memory.

    Args:
        path: the ``.npy`` to create (overwritten).
        chunks: iterable of ``(n_i, H, W, 3)`` RGB maps in [0, 1], ``sum(n_i) == n_maps``.
        n_maps: ``N``.
        resolution: ``(H, W)``.
        dtype: stored type: float32 (exact), float16, or uint8/uint16 (rounded, 4x/2x smaller
            than float32; read back scaled to [0, 1] by :func:`as_texel_source`).

    Returns:
        The path; open it with ``np.load(path, mmap_mode="r")``.

    Raises:
        ValueError: a chunk has the wrong shape, or the chunks do not add up to ``n_maps``.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    height, width = resolution
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_maps, height, width, 3))
    scale = _integer_scale(dtype)
    written = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 4 or chunk.shape[1:] != (height, width, 3):
            raise ValueError(f"chunk has shape {chunk.shape}, expected (n, {height}, {width}, 3).")
        if written + chunk.shape[0] > n_maps:
            raise ValueError(f"the chunks hold more than the {n_maps} maps announced.")
        if scale is not None and np.issubdtype(chunk.dtype, np.floating):
            chunk = np.clip(np.rint(chunk / scale), 0, 1.0 / scale)
        stack[written : written + chunk.shape[0]] = chunk
        written += chunk.shape[0]
    if written != n_maps:
        raise ValueError(f"the chunks hold {written} maps, but {n_maps} were announced.")
    stack.flush()
    del stack
    return path
