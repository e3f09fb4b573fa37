"""The composed, differentiable rendering pipeline used by the fitter.

``vertices (model space) -> camera.project -> rasterize -> interpolate UVs and model-space
normals -> sample albedo texture, SH shading -> image = albedo * shading``.

All shading happens on the compact list of covered pixels; only the final images are dense.
Images are ``(B, C, H, W)`` (kornia / torchvision convention); the fragments stay
``(B, H, W, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from renderer.fragments import Fragments
from renderer.interpolate import interpolate_covered, scatter_to_image
from renderer.rasterize import rasterize
from renderer.shading import SH_CONSTANT_FACTORS, sh_basis, vertex_normals
from renderer.texturing import face_corner_uvs, region_mask, sample_texture

__all__ = ["RenderOutput", "render_textured", "render_shape", "shape_light", "rasterize_with_camera"]


@dataclass
class RenderOutput:
    """What the render functions return.

    Attributes:
        image: ``(B, 3, H, W)`` lit colour ``albedo * shading`` on covered pixels, the background
            elsewhere (0 unless given).
        alpha: ``(B, 1, H, W)`` coverage, 1 on covered pixels, 0 elsewhere (float).
        fragments: the rasteriser's :class:`renderer.fragments.Fragments`.
        albedo: ``(B, 3, H, W)`` unlit colour (0 on background).
        shading: ``(B, 3, H, W)`` SH shading (0 on background).
        normals: ``(B, 3, H, W)`` unit model-space normals (0 on background).
        region_masks: name -> ``(B, 1, H, W)`` bool per-pixel region masks.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    fragments: Fragments
    albedo: torch.Tensor
    shading: torch.Tensor
    normals: torch.Tensor
    region_masks: dict[str, torch.Tensor] = field(default_factory=dict)


def shape_light(batch: int = 1, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(B, 9, 3)`` fixed grey light for shape renders: soft ambient plus a key light from the
    viewer's upper left-front. A surface facing the viewer shades to 0.85, a profile to about
    0.5-0.65."""
    light = torch.zeros(batch, 9, 3, dtype=dtype, device=device)
    light[:, 0] = 0.5 / SH_CONSTANT_FACTORS[0]
    direction = torch.tensor([-0.10, 0.20, 0.35], dtype=dtype, device=device)
    light[:, 1:4] = (direction / SH_CONSTANT_FACTORS[1])[:, None]
    return light


def rasterize_with_camera(
    vertices: torch.Tensor,
    camera,
    faces: torch.Tensor,
    cull_backfaces: bool = False,
    backend: str = "torch",
) -> Fragments:
    """Project model-space ``vertices (B, V, 3)`` with ``camera`` and rasterise at its image size."""
    screen = camera.project(vertices)
    return rasterize(
        screen,
        faces,
        camera.image_size,
        cull_backfaces=cull_backfaces,
        perspective_correct=camera.is_perspective,
        near=camera.near,
        backend=backend,
    )


def _shade_covered(vertices: torch.Tensor, faces: torch.Tensor, fragments: Fragments, light: torch.Tensor):
    """Unit model-space normals ``(N, 3)`` and SH shading ``(N, C)`` at the covered pixels."""
    normals = vertex_normals(vertices, faces)
    pixel_normals = torch.nn.functional.normalize(interpolate_covered(normals, fragments, faces), dim=-1, eps=1e-12)
    basis = sh_basis(pixel_normals)  # (N, 9)
    if light.shape[0] == 1:
        shading = basis @ light[0].to(basis.dtype)
    else:
        shading = torch.einsum("nk,nkc->nc", basis, light.to(basis.dtype).index_select(0, fragments.pixel_batch))
    return pixel_normals, shading


def _to_chw(values: torch.Tensor, fragments: Fragments, background: float = 0.0) -> torch.Tensor:
    return scatter_to_image(values, fragments, background).permute(0, 3, 1, 2)


def _region_masks(vertex_masks, fragments, faces):
    if not vertex_masks:
        return {}
    return {name: region_mask(mask, fragments, faces) for name, mask in vertex_masks.items()}


def render_textured(
    vertices: torch.Tensor,
    camera,
    faces: torch.Tensor,
    vt: torch.Tensor,
    ft: torch.Tensor,
    albedo_texture: torch.Tensor,
    light: torch.Tensor,
    *,
    background: torch.Tensor | float | None = None,
    cull_backfaces: bool = False,
    vertex_masks: dict[str, torch.Tensor] | None = None,
    backend: str = "torch",
) -> RenderOutput:
    """Render a textured, SH-lit mesh.

    Args:
        vertices: ``(B, V, 3)`` model space (metres, y up, +z toward the viewer).
        camera: :class:`renderer.cameras.OrthographicCamera` or
            :class:`renderer.cameras.PerspectiveCamera` (one camera per batch element).
        faces: ``(F, 3)`` int64 vertex indices.
        vt: ``(T, 2)`` OBJ texture coordinates (v = 0 at the bottom of the texture image).
        ft: ``(F, 3)`` int64 indices into ``vt`` per face corner (seams allowed).
        albedo_texture: ``(B, 3, Ht, Wt)`` (or batch 1) RGB albedo in UV space, row 0 = v = 1.
        light: ``(B, 9, 3)`` (or batch 1) SH coefficients, DECA's order and factors, acting on
            **model-space** normals (see :mod:`renderer.shading`).
        background: ``(B, 3, H, W)`` image or a scalar composited behind the mesh; ``None``
            leaves zeros.
        cull_backfaces: drop triangles facing away from the camera before visibility.
        vertex_masks: optional name -> ``(V,)`` bool/0-1 vertex mask or vertex-index tensor;
            returned as per-pixel masks in ``region_masks``.
        backend: rasteriser backend, ``"torch" | "nvdiffrast" | "auto"``.

    Returns:
        :class:`RenderOutput`, differentiable w.r.t. vertices, camera parameters, texture and
        light (through barycentrics, UVs, normals and shading; visibility is not).
    """
    faces = faces.to(vertices.device).long()
    fragments = rasterize_with_camera(vertices, camera, faces, cull_backfaces, backend)
    corner_uv = face_corner_uvs(vt.to(device=vertices.device, dtype=vertices.dtype), ft.to(vertices.device))
    uv = scatter_to_image(interpolate_covered(corner_uv, fragments, faces), fragments)
    albedo = sample_texture(albedo_texture.to(vertices.dtype), uv)
    alpha = fragments.alpha(vertices.dtype)
    albedo = albedo * alpha
    pixel_normals, shading = _shade_covered(vertices, faces, fragments, light)
    shading_image = _to_chw(shading, fragments)
    image = albedo * shading_image
    if background is not None:
        image = image + (1.0 - alpha) * background
    return RenderOutput(
        image=image,
        alpha=alpha,
        fragments=fragments,
        albedo=albedo,
        shading=shading_image,
        normals=_to_chw(pixel_normals, fragments),
        region_masks=_region_masks(vertex_masks, fragments, faces),
    )


def render_shape(
    vertices: torch.Tensor,
    camera,
    faces: torch.Tensor,
    light: torch.Tensor | None = None,
    color: tuple[float, float, float] = (0.75, 0.75, 0.75),
    *,
    background: torch.Tensor | float | None = None,
    cull_backfaces: bool = False,
    vertex_masks: dict[str, torch.Tensor] | None = None,
    backend: str = "torch",
) -> RenderOutput:
    """Render the mesh in a uniform colour with SH light (default: :func:`shape_light`).

    Args:
        vertices: ``(B, V, 3)`` model space.
        camera: orthographic or perspective camera.
        faces: ``(F, 3)`` int64.
        light: ``(B, 9, 3)`` SH light on model-space normals, or None for :func:`shape_light`.
        color: RGB albedo in [0, 1].
        background, cull_backfaces, vertex_masks, backend: as in :func:`render_textured`.

    Returns:
        :class:`RenderOutput` (``albedo`` is the uniform colour on covered pixels).
    """
    faces = faces.to(vertices.device).long()
    if light is None:
        light = shape_light(1, vertices.dtype, vertices.device)
    fragments = rasterize_with_camera(vertices, camera, faces, cull_backfaces, backend)
    alpha = fragments.alpha(vertices.dtype)
    rgb = torch.tensor(color, dtype=vertices.dtype, device=vertices.device).view(1, 3, 1, 1)
    albedo = alpha * rgb
    pixel_normals, shading = _shade_covered(vertices, faces, fragments, light)
    shading_image = _to_chw(shading, fragments)
    image = albedo * shading_image
    if background is not None:
        image = image + (1.0 - alpha) * background
    return RenderOutput(
        image=image,
        alpha=alpha,
        fragments=fragments,
        albedo=albedo,
        shading=shading_image,
        normals=_to_chw(pixel_normals, fragments),
        region_masks=_region_masks(vertex_masks, fragments, faces),
    )
