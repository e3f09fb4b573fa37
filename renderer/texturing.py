"""UV texture sampling and per-pixel region masks.

UV convention (OBJ, and :class:`flame.model_data.UVTemplate`): ``u`` in [0, 1] runs left to
right across the texture image, ``v`` in [0, 1] runs *bottom to top* — ``v = 0`` is the bottom
edge of the last row, ``v = 1`` the top edge of row 0. Texel ``(row r, column c)`` of an
``Ht x Wt`` texture has its centre at ``u = (c + 0.5) / Wt``, ``v = 1 - (r + 0.5) / Ht``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from renderer.fragments import Fragments
from renderer.interpolate import interpolate_covered, scatter_to_image

__all__ = ["uv_to_grid", "sample_texture", "face_corner_uvs", "region_mask"]


def uv_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """OBJ ``(u, v)`` in [0, 1] -> ``grid_sample`` coordinates in [-1, 1] (x right, y down)."""
    return torch.stack([uv[..., 0] * 2.0 - 1.0, 1.0 - uv[..., 1] * 2.0], dim=-1)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample a texture image at UV coordinates.

    Bilinear between texel centres; coordinates outside [0, 1] clamp to the border texels.

    Args:
        texture: ``(B, C, Ht, Wt)`` texture image, row 0 at the top (``v = 1``); batch 1
            broadcasts over ``uv``'s batch.
        uv: ``(B, H, W, 2)`` OBJ texture coordinates (see the module docstring).
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(B, C, H, W)`` sampled values, differentiable w.r.t. ``texture`` and ``uv``.
    """
    if texture.dim() != 4 or uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(
            f"texture must be (B, C, Ht, Wt) and uv (B, H, W, 2); got {tuple(texture.shape)} and {tuple(uv.shape)}"
        )
    if texture.shape[0] == 1 and uv.shape[0] > 1:
        texture = texture.expand(uv.shape[0], -1, -1, -1)
    grid = uv_to_grid(uv).to(texture.dtype)
    return F.grid_sample(texture, grid, mode=mode, padding_mode="border", align_corners=False)


def face_corner_uvs(vt: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Per-face-corner UVs ``(F, 3, 2)`` from the template's ``vt (T, 2)`` and ``ft (F, 3)``.

    Seams need this form: a vertex on a seam has different UVs in the faces on either side.
    """
    return vt[ft.long()]


def region_mask(
    vertex_mask: torch.Tensor, fragments: Fragments, faces: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Per-pixel mask of a mesh region given as a vertex mask.

    A 0/1 per-vertex indicator is interpolated over the pixels and thresholded, so the region's
    boundary runs through the triangles that straddle it.

    Args:
        vertex_mask: ``(V,)`` or ``(B, V)`` bool or float 0/1 indicator; or an integer tensor
            of vertex indices (as in ``FLAME_masks.pkl``), the mesh having ``faces.max() + 1``
            vertices.
        fragments: from the rasteriser.
        faces: ``(F, 3)`` int64.
        threshold: a pixel is in the region when the interpolated indicator exceeds it.

    Returns:
        ``(B, 1, H, W)`` bool, False on background.
    """
    if not vertex_mask.is_floating_point() and vertex_mask.dtype != torch.bool:
        n_vertices = int(faces.max()) + 1
        indicator = torch.zeros(n_vertices, device=fragments.pixel_index.device)
        indicator[vertex_mask.long()] = 1.0
    else:
        indicator = vertex_mask.to(device=fragments.pixel_index.device, dtype=torch.float32)
    if indicator.dim() == 1:
        indicator = indicator[None]
    values = interpolate_covered(indicator[..., None], fragments, faces)
    image = scatter_to_image(values, fragments, 0.0)
    return (image > threshold).permute(0, 3, 1, 2)
