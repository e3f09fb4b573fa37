"""Interpolation of vertex or face-corner attributes over the rasterised pixels."""

from __future__ import annotations

import torch

from renderer.fragments import Fragments

__all__ = ["interpolate", "interpolate_covered"]


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
        fragments: from :func:`renderer.rasterize.rasterize`.
        faces: ``(F, 3)`` int64, the faces that were rasterised.

    Returns:
        ``(N, C)`` values at ``fragments.pixel_index``, differentiable w.r.t. ``attributes``
        and the barycentrics.
    """
    n_faces = faces.shape[0]
    pixel_face = fragments.pixel_face
    if attributes.dim() == 3 and attributes.shape[:2] == (n_faces, 3) and attributes.shape[0] != fragments.batch_size:
        corner_values = attributes.index_select(0, pixel_face)  # (N, 3, C)
    elif attributes.dim() == 3:
        batch, n_vertices, channels = attributes.shape
        if batch not in (1, fragments.batch_size):
            raise ValueError(
                f"per-vertex attributes have batch {batch}, fragments have {fragments.batch_size}"
            )
        corner_ids = faces.to(attributes.device).index_select(0, pixel_face)  # (N, 3)
        if batch > 1:
            corner_ids = corner_ids + (fragments.pixel_batch * n_vertices)[:, None]
        flat = attributes.reshape(-1, channels)
        corner_values = flat.index_select(0, corner_ids.reshape(-1)).view(-1, 3, channels)
    elif attributes.dim() == 4 and attributes.shape[1:3] == (n_faces, 3):
        batch, _, _, channels = attributes.shape
        if batch == 1:
            corner_values = attributes[0].index_select(0, pixel_face)
        elif batch == fragments.batch_size:
            rows = fragments.pixel_batch * n_faces + pixel_face
            corner_values = attributes.reshape(-1, 3, channels).index_select(0, rows)
        else:
            raise ValueError(
                f"per-corner attributes have batch {batch}, fragments have {fragments.batch_size}"
            )
    else:
        raise ValueError(
            "attributes must be (B, V, C), (F, 3, C) or (B, F, 3, C) with F = "
            f"{n_faces}; got {tuple(attributes.shape)}"
        )
    bary = fragments.pixel_bary.to(corner_values.dtype)
    return (corner_values * bary[:, :, None]).sum(dim=1)


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
        fragments: from :func:`renderer.rasterize.rasterize`.
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
    image = values.new_full((total, values.shape[1]), background)
    image = image.index_copy(0, fragments.pixel_index, values)
    return image.view(fragments.batch_size, height, width, values.shape[1])
