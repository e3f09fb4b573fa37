"""UV texture sampling and per-pixel region masks.

UV convention (OBJ, and :class:`flamefit.flame.model_data.UVTemplate`): ``u`` in [0, 1] runs left to
right across the texture image, ``v`` in [0, 1] runs *bottom to top* — ``v = 0`` is the bottom
edge of the last row, ``v = 1`` the top edge of row 0. Texel ``(row r, column c)`` of an
``Ht x Wt`` texture has its centre at ``u = (c + 0.5) / Wt``, ``v = 1 - (r + 0.5) / Ht``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flamefit.renderer.fragments import Fragments
from flamefit.renderer.interpolate import interpolate_covered, scatter_to_image

__all__ = ["uv_to_grid", "sample_texture", "sample_texture_covered", "face_corner_uvs", "region_mask"]


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


def sample_texture_covered(
    texture: torch.Tensor, uv: torch.Tensor, pixel_batch: torch.Tensor | None = None
) -> torch.Tensor:
    """Bilinear texture lookup at a list of points, channel-major: the compact counterpart of
    :func:`sample_texture` (same values and gradients as its ``"bilinear"`` mode, i.e.
    ``grid_sample(align_corners=False, padding_mode="border")``).

    The four neighbouring texels of every point are fetched with one ``index_select`` on the
    flattened texture, so forward and backward (an ``index_add`` into the texture) touch only
    the sampled texels; no dense ``(B, C, H, W)`` grid or image is formed.

    Args:
        texture: ``(Bt, C, Ht, Wt)`` texture image, row 0 at the top (``v = 1``).
        uv: ``(2, N)`` OBJ ``(u, v)`` per point (channel-major).
        pixel_batch: ``(N,)`` int64 texture of each point when ``Bt > 1``; ignored for ``Bt == 1``.

    Returns:
        ``(C, N)`` sampled values, differentiable w.r.t. ``texture`` and ``uv``.
    """
    n_textures, channels, height, width = texture.shape
    u, v = uv.to(texture.dtype).unbind(0)
    # Texel-centre coordinates (x right, y down), clamped to the border texels' centres.
    x = (u * width - 0.5).clamp(0, width - 1)
    y = ((1.0 - v) * height - 0.5).clamp(0, height - 1)
    x0, y0 = x.detach().floor(), y.detach().floor()
    wx, wy = x - x0, y - y0  # NaN coordinates give NaN values (and read texel 0)
    # int32 texel indices where they fit (half the memory traffic of int64 for large batches).
    index_dtype = torch.int32 if texture.numel() < 2**31 else torch.int64
    column = x0.nan_to_num(0.0).to(index_dtype)
    row = y0.nan_to_num(0.0).to(index_dtype)
    next_column = (column + 1).clamp(max=width - 1) - column  # 0 on the last column (weight 0 there)
    next_row = ((row + 1).clamp(max=height - 1) - row) * width
    top_left = row * width + column
    if n_textures > 1:
        top_left = top_left + pixel_batch.to(index_dtype) * (channels * height * width)
    corners = torch.stack([top_left, top_left + next_column, top_left + next_row, top_left + next_row + next_column])
    channel_start = torch.arange(0, channels * height * width, height * width, device=uv.device, dtype=index_dtype)
    index = corners + channel_start[:, None, None]  # (C, 4, N)
    texels = texture.reshape(-1).index_select(0, index.reshape(-1)).view(channels, 4, -1)
    weights = torch.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy])  # (4, N)
    return (texels * weights).sum(dim=1)


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
