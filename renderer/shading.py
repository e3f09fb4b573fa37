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

from flamefit.renderer.device_constants import device_constant
from flamefit.renderer.triangles import batched_face_index, gather_corners

__all__ = [
    "SH_CONSTANT_FACTORS",
    "face_normals",
    "vertex_normals",
    "vertex_normals_channels",
    "normalize_channels",
    "sh_basis",
    "sh_basis_channels",
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


def normalize_channels(vectors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``vectors (3, N)`` divided by ``max(|v|, eps)``, like ``F.normalize(dim=0)`` (whose
    norm over the leading dim is a slow strided reduction on CPU)."""
    return vectors / (vectors * vectors).sum(dim=0).sqrt().clamp_min(eps)


def _face_normal_channels(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(3, B * F)`` area-weighted normals ``(v1 - v0) x (v2 - v0)``, channel-major."""
    corners = gather_corners(vertices, faces.to(vertices.device))  # (3 coordinates, 3 corners, B * F)
    edges = corners[:, 1:] - corners[:, :1]  # (3, 2, B * F): v1 - v0, v2 - v0
    first, second = edges.unbind(1)
    return torch.linalg.cross(first, second, dim=0)


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
    normals = _face_normal_channels(vertices, faces)
    if normalize:
        normals = normalize_channels(normals)
    return normals.T.reshape(vertices.shape[0], faces.shape[0], 3)


def vertex_normals_channels(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit per-vertex normals, channel-major ``(3, B * V)`` (row ``b * V + v``).

    The area-weighted sum of the adjacent triangles' normals, accumulated with one
    ``index_add`` (whose backward is an ``index_select``), then normalised.

    Args:
        vertices: ``(B, V, 3)`` in any space (model space for lighting).
        faces: ``(F, 3)`` int64.
    """
    batch, n_vertices, _ = vertices.shape
    faces = faces.to(vertices.device)
    weighted = _face_normal_channels(vertices, faces)  # (3, B * F)
    corner_index = batched_face_index(faces, batch, n_vertices)  # every corner receives its face's normal
    contributions = weighted[:, None, :].expand(3, 3, weighted.shape[1]).reshape(3, -1)
    accumulated = weighted.new_zeros(3, batch * n_vertices).index_add(1, corner_index.reshape(-1), contributions)
    return normalize_channels(accumulated)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit per-vertex normals: the area-weighted sum of the adjacent triangles' normals.

    Args:
        vertices: ``(B, V, 3)`` in any space (model space for lighting).
        faces: ``(F, 3)`` int64.

    Returns:
        ``(B, V, 3)`` unit normals in the space of ``vertices`` (zero for isolated vertices).
    """
    batch, n_vertices, _ = vertices.shape
    return vertex_normals_channels(vertices, faces).T.reshape(batch, n_vertices, 3)


def _sh_terms(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, squares: torch.Tensor) -> list[torch.Tensor]:
    """DECA's nine SH basis polynomials of unit normals ``(x, y, z)`` (each any shape) with
    ``squares`` their squares stacked on dim 0, in order and without their constant factors
    (see the module docstring)."""
    return [torch.ones_like(x), x, y, z, x * y, x * z, y * z, squares[0] - squares[1], 3 * squares[2] - 1]


def sh_basis_channels(normals: torch.Tensor, with_factors: bool = True) -> torch.Tensor:
    """DECA's nine SH basis values, channel-major.

    Args:
        normals: ``(3, N)`` unit normals (model space).
        with_factors: multiply by :data:`SH_CONSTANT_FACTORS` (False leaves that to the caller,
            who can fold the factors into the light: nine multiplications instead of ``9 N``).

    Returns:
        ``(9, N)``.
    """
    basis = torch.stack(_sh_terms(*normals.unbind(0), normals * normals))
    if with_factors:
        basis = basis * device_constant(SH_CONSTANT_FACTORS, normals.dtype, normals.device)[:, None]
    return basis


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """DECA's nine SH basis values times their constant factors.

    Args:
        normals: ``(..., 3)`` unit normals (model space).

    Returns:
        ``(..., 9)``.
    """
    x, y, z = normals.unbind(-1)
    basis = torch.stack(_sh_terms(x, y, z, torch.stack([x * x, y * y, z * z])), dim=-1)
    factors = device_constant(SH_CONSTANT_FACTORS, normals.dtype, normals.device)
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
    f = device_constant(SH_CONSTANT_FACTORS, light.dtype, light.device)
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
