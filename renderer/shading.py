"""Normals and second-order spherical-harmonics (SH) lighting.

The SH model is DECA's ``add_SHlight``: for a unit normal ``n = (x, y, z)`` the nine basis
functions are ``[1, x, y, z, x*y, x*z, y*z, x^2 - y^2, 3 z^2 - 1]``, each multiplied by a fixed
factor (Ramamoorthi & Hanrahan's irradiance constants ``A_l * Y_lm`` normalisation, folded
together as in DECA's ``constant_factor``):

====  ======================  ==========================================
 k    basis                   factor
====  ======================  ==========================================
 0    1                       1 / sqrt(4 pi)                    = 0.28209
 1-3  x, y, z                 (2 pi / 3) * sqrt(3 / (4 pi))      = 1.02333
 4-6  x y, x z, y z           (pi / 4) * 3 * sqrt(5 / (12 pi))   = 0.85808
 7    x^2 - y^2               (pi / 4) * (3/2) * sqrt(5 / (12 pi)) = 0.42904
 8    3 z^2 - 1               (pi / 4) * (1/2) * sqrt(5 / (4 pi))  = 0.24770
====  ======================  ==========================================

Shading per colour channel c is ``sum_k light[b, k, c] * factor_k * basis_k(n)`` and the lit
colour is ``albedo * shading`` (no clamping, as DECA). Normals are taken in **model space**
(FLAME: y up, +z toward the viewer), as DECA does, so the light is attached to the head's
coordinate frame, not to the camera.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SH_CONSTANT_FACTORS",
    "face_normals",
    "vertex_normals",
    "sh_basis",
    "sh_shading",
    "rotate_sh_light",
    "constant_light",
]

SH_CONSTANT_FACTORS = (
    1.0 / math.sqrt(4 * math.pi),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * (3 / 2) * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * (1 / 2) * math.sqrt(5 / (4 * math.pi)),
)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Per-triangle normals ``(v1 - v0) x (v2 - v0)``.

    Args:
        vertices: ``(B, V, 3)`` in any space (model space for lighting).
        faces: ``(F, 3)`` int64; counter-clockwise corners give outward normals.
        normalize: unit length (degenerate triangles give zero vectors) or area-weighted
            (length = twice the triangle's area).

    Returns:
        ``(B, F, 3)`` in the space of ``vertices``.
    """
    faces = faces.to(vertices.device)
    v0 = vertices[:, faces[:, 0]]
    v1 = vertices[:, faces[:, 1]]
    v2 = vertices[:, faces[:, 2]]
    normals = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    if normalize:
        normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
    return normals


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit per-vertex normals: the area-weighted sum of the adjacent triangles' normals.

    Args:
        vertices: ``(B, V, 3)`` in any space (model space for lighting).
        faces: ``(F, 3)`` int64.

    Returns:
        ``(B, V, 3)`` unit normals in the space of ``vertices`` (zero for isolated vertices).
    """
    batch, n_vertices, _ = vertices.shape
    faces = faces.to(vertices.device)
    weighted = face_normals(vertices, faces, normalize=False)  # (B, F, 3)
    index = faces.reshape(1, -1) + (torch.arange(batch, device=vertices.device) * n_vertices)[:, None]
    contributions = weighted.repeat_interleave(3, dim=1)  # (B, 3F, 3), corner order
    accumulated = torch.zeros(batch * n_vertices, 3, dtype=vertices.dtype, device=vertices.device)
    accumulated = accumulated.index_add(0, index.reshape(-1), contributions.reshape(-1, 3)).view(batch, n_vertices, 3)
    return torch.nn.functional.normalize(accumulated, dim=-1, eps=1e-12)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """DECA's nine SH basis values times their constant factors.

    Args:
        normals: ``(..., 3)`` unit normals (model space).

    Returns:
        ``(..., 9)``.
    """
    x, y, z = normals.unbind(-1)
    basis = torch.stack(
        [torch.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], dim=-1
    )
    factors = torch.tensor(SH_CONSTANT_FACTORS, dtype=normals.dtype, device=normals.device)
    return basis * factors


def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Irradiance-like shading from SH light.

    Args:
        normals: ``(B, ..., 3)`` unit normals in model space (e.g. ``(B, H, W, 3)`` or the
            compact ``(N, 3)`` form together with a per-row light, see below).
        light: ``(B, 9, C)`` SH coefficients per colour channel (DECA's ``(B, 9, 3)``), or
            ``(N, 9, C)`` matching compact ``(N, 3)`` normals row by row.

    Returns:
        ``(B, ..., C)`` shading, channel-last like ``normals``.
    """
    basis = sh_basis(normals)  # (B, ..., 9)
    batch = basis.shape[0]
    flat = basis.reshape(batch, -1, 9)
    shading = torch.bmm(flat, light.to(basis.dtype))  # (B, P, C)
    return shading.reshape(*basis.shape[:-1], light.shape[-1])


def constant_light(value: float | torch.Tensor, batch: int = 1, channels: int = 3, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(B, 9, C)`` light whose shading is ``value`` everywhere (only the constant band)."""
    light = torch.zeros(batch, 9, channels, dtype=dtype, device=device)
    light[:, 0, :] = torch.as_tensor(value, dtype=dtype, device=device) / SH_CONSTANT_FACTORS[0]
    return light


def rotate_sh_light(light: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Coefficients of the same light after rotating the scene by ``rotation``.

    If a surface's normals are rotated, ``n' = R n``, then
    ``sh_shading(n', rotate_sh_light(light, R)) == sh_shading(n, light)`` for unit normals.
    Exact for any rotation: band 1 is a vector (``l' = R l``); band 2 is the symmetric traceless
    matrix ``M`` with ``n^T M n`` equal to the band-2 shading on the unit sphere, rotated as
    ``R M R^T`` (``3 z^2 - 1 = 2 z^2 - x^2 - y^2`` on the sphere).

    Args:
        light: ``(B, 9, C)`` SH coefficients (DECA order and factors).
        rotation: ``(B, 3, 3)`` or ``(3, 3)`` rotation matrix acting on model-space vectors.

    Returns:
        ``(B, 9, C)``.
    """
    f = torch.tensor(SH_CONSTANT_FACTORS, dtype=light.dtype, device=light.device)
    R = rotation.to(light.dtype)
    if R.dim() == 2:
        R = R.expand(light.shape[0], 3, 3)
    band1 = torch.einsum("bij,bjc->bic", R, light[:, 1:4])
    a, b, c = f[4], f[7], f[8]
    l4, l5, l6, l7, l8 = light[:, 4:9].unbind(1)  # each (B, C)
    M = torch.stack(
        [
            torch.stack([b * l7 - c * l8, a * l4 / 2, a * l5 / 2], dim=1),
            torch.stack([a * l4 / 2, -b * l7 - c * l8, a * l6 / 2], dim=1),
            torch.stack([a * l5 / 2, a * l6 / 2, 2 * c * l8], dim=1),
        ],
        dim=1,
    )  # (B, 3, 3, C)
    M = torch.einsum("bij,bjkc,blk->bilc", R, M, R)
    band2 = torch.stack(
        [
            2 * M[:, 0, 1] / a,
            2 * M[:, 0, 2] / a,
            2 * M[:, 1, 2] / a,
            (M[:, 0, 0] - M[:, 1, 1]) / (2 * b),
            M[:, 2, 2] / (2 * c),
        ],
        dim=1,
    )
    return torch.cat([light[:, :1], band1, band2], dim=1)
