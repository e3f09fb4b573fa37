"""Interpolation of vertex or face-corner attributes over the rasterised pixels.

Internally the per-pixel work is *channel-major*: values are ``(C, N)`` with the N covered pixels
innermost, so every elementwise op is one long vectorised loop (a ``(N, C)`` layout with C = 2
or 3 innermost makes PyTorch's CPU kernels loop over tiny rows and runs many times slower).
The public functions keep their ``(N, C)`` / ``(B, H, W, C)`` results.
"""

from __future__ import annotations

import torch

from flamefit.renderer.fragments import Fragments

__all__ = [
    "interpolate",
    "interpolate_covered",
    "interpolate_channels",
    "corner_vertex_ids",
    "gather_corner_rows",
    "blend_corners",
    "scatter_to_image",
    "scatter_channels",
]


def corner_vertex_ids(fragments: Fragments, faces: torch.Tensor, n_vertices: int, batch: int) -> torch.Tensor:
    """``(3, N)`` int64 rows of a ``(B * V, ...)`` per-vertex table for the corners of each
    covered pixel's triangle (``b * V + faces[pixel_face, k]``; batch ignored when 1)."""
    ids = faces.to(fragments.pixel_face.device).T.index_select(1, fragments.pixel_face)  # (3, N)
    if batch > 1:
        ids = ids + fragments.pixel_batch * n_vertices
    return ids


def gather_corner_rows(table: torch.Tensor, corner_ids: torch.Tensor) -> torch.Tensor:
    """Corner values of every covered pixel from a channel-major table.

    Args:
        table: ``(C, R)`` rows of per-vertex (or per-UV) values, e.g. ``(C, B * V)``.
        corner_ids: ``(3, N)`` int64 rows, e.g. from :func:`corner_vertex_ids`.

    Returns:
        ``(C, 3, N)``, one ``index_select`` (backward: an ``index_add``).
    """
    return table.index_select(1, corner_ids.reshape(-1)).view(table.shape[0], 3, -1)


def blend_corners(corner_values: torch.Tensor, pixel_bary: torch.Tensor) -> torch.Tensor:
    """Barycentric blend: ``corner_values (C, 3, N)`` and ``pixel_bary (N, 3)`` -> ``(C, N)``."""
    bary = pixel_bary.T.to(corner_values.dtype)  # (3, N); a free view of the rasteriser's layout
    return (corner_values * bary).sum(dim=1)


def interpolate_channels(
    attributes: torch.Tensor, fragments: Fragments, faces: torch.Tensor
) -> torch.Tensor:
    """Barycentric interpolation at the covered pixels, channel-major.

    Args:
        attributes: as in :func:`interpolate_covered`.
        fragments: from :func:`flamefit.renderer.rasterize.rasterize`.
        faces: ``(F, 3)`` int64, the faces that were rasterised.

    Returns:
        ``(C, N)`` values at ``fragments.pixel_index``, differentiable w.r.t. ``attributes``
        and the barycentrics.
    """
    n_faces = faces.shape[0]
    pixel_face = fragments.pixel_face
    if attributes.dim() == 3 and attributes.shape[:2] == (n_faces, 3) and attributes.shape[0] != fragments.batch_size:
        channels = attributes.shape[2]
        table = attributes.permute(2, 1, 0)  # (C, 3, F)
        corner_values = table.reshape(channels * 3, n_faces).index_select(1, pixel_face).view(channels, 3, -1)
    elif attributes.dim() == 3:
        batch, n_vertices, channels = attributes.shape
        if batch not in (1, fragments.batch_size):
            raise ValueError(
                f"per-vertex attributes have batch {batch}, fragments have {fragments.batch_size}"
            )
        ids = corner_vertex_ids(fragments, faces, n_vertices, batch)
        table = attributes.reshape(-1, channels).T.contiguous()  # (C, B * V)
        corner_values = gather_corner_rows(table, ids)
    elif attributes.dim() == 4 and attributes.shape[1:3] == (n_faces, 3):
        batch, _, _, channels = attributes.shape
        if batch == 1:
            rows = pixel_face
        elif batch == fragments.batch_size:
            rows = fragments.pixel_batch * n_faces + pixel_face
        else:
            raise ValueError(
                f"per-corner attributes have batch {batch}, fragments have {fragments.batch_size}"
            )
        table = attributes.permute(3, 2, 0, 1).reshape(channels * 3, batch * n_faces)  # (C*3, B*F)
        corner_values = table.index_select(1, rows).view(channels, 3, -1)
    else:
        raise ValueError(
            "attributes must be (B, V, C), (F, 3, C) or (B, F, 3, C) with F = "
            f"{n_faces}; got {tuple(attributes.shape)}"
        )
    return blend_corners(corner_values, fragments.pixel_bary)


def interpolate_covered(
    attributes: torch.Tensor, fragments: Fragments, faces: torch.Tensor
) -> torch.Tensor:
    """Barycentric interpolation at the covered pixels only (the compact form).

    Args:
        attributes: one of
            * ``(B, V, C)`` per-vertex values (batch size 1 broadcasts),
            * ``(F, 3, C)`` per face corner, shared by the batch (e.g. UVs ``vt[ft]``, which
              handles seams: the two sides of a seam use different corner values),
            * ``(B, F, 3, C)`` per face corner and batch element.
        fragments: from :func:`flamefit.renderer.rasterize.rasterize`.
        faces: ``(F, 3)`` int64, the faces that were rasterised.

    Returns:
        ``(N, C)`` values at ``fragments.pixel_index`` (a view of a channel-major tensor),
        differentiable w.r.t. ``attributes`` and the barycentrics.
    """
    return interpolate_channels(attributes, fragments, faces).T


def interpolate(
    attributes: torch.Tensor,
    fragments: Fragments,
    faces: torch.Tensor,
    background: float = 0.0,
) -> torch.Tensor:
    """Interpolate attributes to every pixel, like nvdiffrast's ``interpolate``.

    Args:
        attributes: ``(B, V, C)`` per vertex, ``(F, 3, C)`` or ``(B, F, 3, C)`` per face corner
            (see :func:`interpolate_covered`).
        fragments: from :func:`flamefit.renderer.rasterize.rasterize`.
        faces: ``(F, 3)`` int64.
        background: value written where no triangle covers the pixel.

    Returns:
        ``(B, H, W, C)`` image of interpolated values (channel-last, like the fragments).
    """
    values = interpolate_covered(attributes, fragments, faces)
    return scatter_to_image(values, fragments, background)


def scatter_to_image(values: torch.Tensor, fragments: Fragments, background: float = 0.0) -> torch.Tensor:
    """Place per-covered-pixel values ``(N, C)`` into a ``(B, H, W, C)`` image."""
    height, width = fragments.image_size
    total = fragments.batch_size * height * width
    image = scatter_channels(values.T, fragments.pixel_index, total, background)
    return image.view(fragments.batch_size, height, width, values.shape[1])


def scatter_channels(
    values: torch.Tensor, pixel_index: torch.Tensor, total: int, background: float = 0.0
) -> torch.Tensor:
    """Channel-major values at flat pixels -> a channel-last pixel table (the one pixel scatter).

    Args:
        values: ``(C, N)`` one column per covered pixel.
        pixel_index: ``(N,)`` int64 distinct flat pixel indices ``b * H * W + i * W + j``.
        total: ``B * H * W``.
        background: value of the pixels not in ``pixel_index``.

    Returns:
        ``(total, C)``, differentiable w.r.t. ``values`` (one ``scatter``; backward a gather).
    """
    channels = values.shape[0]
    index = pixel_index * channels + torch.arange(channels, device=pixel_index.device)[:, None]  # (C, N)
    flat = values.new_full((total * channels,), background)
    flat.scatter_(0, index.reshape(-1), values.reshape(-1))
    return flat.view(total, channels)
