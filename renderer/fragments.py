"""The per-pixel result of rasterisation, shared by every backend.

Per-pixel tensors are batch-first and channel-last, ``(B, H, W, ...)``, like nvdiffrast's
``rast`` output. Pixel ``(row i, column j)`` has its centre at screen point ``(j + 0.5, i + 0.5)``
(screen space: pixels, origin at the top-left corner of the image, x right, y down).

Besides the dense images, a :class:`Fragments` keeps the *compact* list of covered pixels
(``pixel_index``, ``pixel_face``, ``pixel_bary``). :func:`flamefit.renderer.interpolate.interpolate`
works on that list only, so the cost of shading scales with the number of covered pixels, not
with ``B * H * W``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Fragments:
    """Nearest visible triangle per pixel and where in it the pixel centre lies.

    Attributes:
        face_index: ``(B, H, W)`` int64 index into ``faces`` of the nearest triangle covering
            the pixel centre, ``-1`` for background.
        bary: ``(B, H, W, 3)`` barycentric weights of the pixel centre w.r.t. the three corners
            ``faces[face_index]`` (in that order); perspective-correct when the rasteriser was
            asked for it, screen-space (affine) otherwise. Zero on background. Differentiable
            w.r.t. the screen-space vertex positions.
        depth: ``(B, H, W)`` depth of the surface at the pixel centre in the units of the
            vertices' third screen coordinate (smaller = nearer to the camera); ``0`` on
            background (check ``mask``). Differentiable like ``bary``.
        mask: ``(B, H, W)`` bool, True where a triangle covers the pixel centre.
        pixel_index: ``(N,)`` int64 flat indices ``b * H * W + i * W + j`` of the covered
            pixels, in increasing order.
        pixel_face: ``(N,)`` int64 triangle index (into ``faces``) at each covered pixel.
        pixel_bary: ``(N, 3)`` barycentric weights at each covered pixel (same values as
            ``bary`` at those pixels; this is the tensor ``bary`` was scattered from).
        image_size: ``(H, W)``.
        covered_batch: optional ``(N,)`` int64 batch element of each covered pixel, when the
            producer already has it (otherwise :attr:`pixel_batch` derives it).
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    pixel_index: torch.Tensor
    pixel_face: torch.Tensor
    pixel_bary: torch.Tensor
    image_size: tuple[int, int]
    covered_batch: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def batch_size(self) -> int:
        return int(self.face_index.shape[0])

    @property
    def pixel_batch(self) -> torch.Tensor:
        """``(N,)`` int64 batch element of each covered pixel."""
        if self.covered_batch is not None:
            return self.covered_batch
        per_image = self.mask.reshape(self.batch_size, -1).sum(dim=1)
        images = torch.arange(self.batch_size, device=self.pixel_index.device)
        return torch.repeat_interleave(images, per_image, output_size=self.pixel_index.numel())

    def alpha(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Coverage as an image, ``(B, 1, H, W)`` with 1 on covered pixels and 0 elsewhere."""
        return self.mask.unsqueeze(1).to(dtype)
