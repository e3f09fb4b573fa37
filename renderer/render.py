"""The composed, differentiable rendering pipeline used by the fitter.

``vertices (model space) -> camera.project -> rasterize -> interpolate UVs and model-space
normals -> sample albedo texture, SH shading -> image = albedo * shading``.

All shading happens on the compact list of covered pixels, channel-major ``(C, N)`` (see
:mod:`flamefit.renderer.interpolate`): corner UVs and normals are gathered per pixel, the texture is
sampled only there (:func:`flamefit.renderer.texturing.sample_texture_covered`), and only the final
images are dense, written with one ``scatter`` each. Images are ``(B, C, H, W)`` (kornia /
torchvision convention); the fragments stay ``(B, H, W, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from flamefit.renderer.device_constants import device_constant
from flamefit.renderer.fragments import Fragments
from flamefit.renderer.interpolate import blend_corners, corner_vertex_ids, gather_corner_rows
from flamefit.renderer.rasterize import rasterize
from flamefit.renderer.shading import SH_CONSTANT_FACTORS, normalize_channels, sh_basis_channels, vertex_normals_channels
from flamefit.renderer.texturing import region_mask, sample_texture_covered

__all__ = ["RenderOutput", "render_textured", "render_shape", "shape_light", "rasterize_with_camera"]


@dataclass
class RenderOutput:
    """What the render functions return.

    Attributes:
        image: ``(B, 3, H, W)`` lit colour ``albedo * shading`` on covered pixels, the background
            elsewhere (0 unless given).
        alpha: ``(B, 1, H, W)`` coverage, 1 on covered pixels, 0 elsewhere (float).
        fragments: the rasteriser's :class:`flamefit.renderer.fragments.Fragments`.
        albedo: ``(B, 3, H, W)`` unlit colour (0 on background); like ``shading`` and
            ``normals`` built from the compact per-pixel values when first read (the fit never
            reads them, so its hot loop does not pay for the dense images).
        shading: ``(B, 3, H, W)`` SH shading (0 on background).
        normals: ``(B, 3, H, W)`` unit model-space normals (0 on background); built like
            ``shading``.
        region_masks: name -> ``(B, 1, H, W)`` bool per-pixel region masks.
        albedo_covered: ``(C, N)`` albedo at ``fragments.pixel_index`` (channel-major).
        shading_covered: ``(C, N)`` shading at ``fragments.pixel_index`` (channel-major).
        normals_covered: ``(3, N)`` unit normals there.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    fragments: Fragments
    albedo_covered: torch.Tensor
    shading_covered: torch.Tensor
    normals_covered: torch.Tensor
    region_masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def albedo(self) -> torch.Tensor:
        return _to_chw(self.albedo_covered, self.fragments)

    @property
    def shading(self) -> torch.Tensor:
        return _to_chw(self.shading_covered, self.fragments)

    @property
    def normals(self) -> torch.Tensor:
        return _to_chw(self.normals_covered, self.fragments)


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
    """Unit model-space normals ``(3, N)`` and SH shading ``(C, N)`` at the covered pixels."""
    batch, n_vertices, _ = vertices.shape
    normals = vertex_normals_channels(vertices, faces)  # (3, B * V)
    corner_ids = corner_vertex_ids(fragments, faces, n_vertices, batch)
    blended = blend_corners(gather_corner_rows(normals, corner_ids), fragments.pixel_bary)
    pixel_normals = normalize_channels(blended)
    basis = sh_basis_channels(pixel_normals, with_factors=False)  # (9, N)
    factors = device_constant(SH_CONSTANT_FACTORS, basis.dtype, basis.device)
    return pixel_normals, _apply_light(basis, light.to(basis.dtype) * factors[:, None], fragments)


def _apply_light(basis: torch.Tensor, light: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Shading ``(C, N)`` from the SH basis ``(9, N)`` and ``light (B or 1, 9, C)`` (constant
    factors already applied to one of them).

    The covered pixels are sorted by batch element, so each image's pixels are one contiguous
    block: one ``(C, 9) @ (9, N_b)`` product per image (``split``/``cat``, so forward and
    backward stay O(N)), instead of gathering a ``(9, C)`` light matrix for every pixel.
    """
    if light.shape[0] == 1:
        return light[0].T @ basis
    if basis.is_cuda:
        return _apply_light_dense(basis, light, fragments)
    per_image = torch.bincount(fragments.pixel_batch, minlength=fragments.batch_size).tolist()
    blocks = basis.split(per_image, dim=1)
    return torch.cat([image_light.T @ block for image_light, block in zip(light, blocks)], dim=1)


def _apply_light_dense(basis: torch.Tensor, light: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """:func:`_apply_light` as one batched product over full image planes: ``(B, C, 9) @
    (B, 9, H*W)``, then the covered pixels picked out. On a GPU the per-image products cost
    a kernel launch each (forward and backward) and a host read of the pixel counts; the
    dense planes cost memory bandwidth instead, which a GPU has plenty of."""
    height, width = fragments.image_size
    batch, channels = fragments.batch_size, light.shape[2]
    # pixel_index is already the flat position b * H * W + i * W + j
    dense = basis.new_zeros(basis.shape[0], batch * height * width).index_copy(1, fragments.pixel_index, basis)
    dense = dense.view(basis.shape[0], batch, height * width).transpose(0, 1)  # (B, 9, H*W)
    shaded = torch.bmm(light.transpose(1, 2), dense)  # (B, C, H*W), i.e. a (B, C, H, W) image
    picks = _image_positions(fragments, channels)  # (C, N)
    return shaded.reshape(-1).index_select(0, picks.reshape(-1)).view(channels, -1)


def _image_positions(fragments: Fragments, channels: int) -> torch.Tensor:
    """``(C, N)`` flat positions of the covered pixels in a ``(B, C, H, W)`` image."""
    height, width = fragments.image_size
    plane = height * width
    first = fragments.pixel_index + fragments.pixel_batch * ((channels - 1) * plane)  # channel 0
    return first + torch.arange(0, channels * plane, plane, device=first.device)[:, None]


def _to_chw(values: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Channel-major ``values (C, N)`` -> ``(B, C, H, W)`` image, 0 on background."""
    height, width = fragments.image_size
    channels = values.shape[0]
    image = values.new_zeros(fragments.batch_size * channels * height * width)
    image.scatter_(0, _image_positions(fragments, channels).reshape(-1), values.reshape(-1))
    return image.view(fragments.batch_size, channels, height, width)


def _covered_uvs(vt: torch.Tensor, ft: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """``(2, N)`` interpolated OBJ ``(u, v)`` at the covered pixels (each face's own corners)."""
    uv_ids = ft.T.index_select(1, fragments.pixel_face)  # (3, N)
    return blend_corners(gather_corner_rows(vt.T.contiguous(), uv_ids), fragments.pixel_bary)


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
        camera: :class:`flamefit.renderer.cameras.OrthographicCamera` or
            :class:`flamefit.renderer.cameras.PerspectiveCamera` (one camera per batch element).
        faces: ``(F, 3)`` int64 vertex indices.
        vt: ``(T, 2)`` OBJ texture coordinates (v = 0 at the bottom of the texture image).
        ft: ``(F, 3)`` int64 indices into ``vt`` per face corner (seams allowed).
        albedo_texture: ``(B, 3, Ht, Wt)`` (or batch 1) RGB albedo in UV space, row 0 = v = 1.
        light: ``(B, 9, 3)`` (or batch 1) SH coefficients, DECA's order and factors, acting on
            **model-space** normals (see :mod:`flamefit.renderer.shading`).
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
    uv = _covered_uvs(vt.to(device=vertices.device, dtype=vertices.dtype), ft.to(vertices.device).long(), fragments)
    albedo = sample_texture_covered(albedo_texture.to(vertices.dtype), uv, fragments.pixel_batch)  # (3, N)
    pixel_normals, shading = _shade_covered(vertices, faces, fragments, light)
    alpha = fragments.alpha(vertices.dtype)
    image = _to_chw(albedo * shading, fragments)
    if background is not None:
        image = image + (1.0 - alpha) * background
    return RenderOutput(
        image=image,
        alpha=alpha,
        fragments=fragments,
        albedo_covered=albedo,
        shading_covered=shading,
        normals_covered=pixel_normals,
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
    rgb = torch.tensor(color, dtype=vertices.dtype, device=vertices.device)
    pixel_normals, shading = _shade_covered(vertices, faces, fragments, light)
    image = _to_chw(rgb[:, None] * shading, fragments)
    if background is not None:
        image = image + (1.0 - alpha) * background
    return RenderOutput(
        image=image,
        alpha=alpha,
        fragments=fragments,
        albedo_covered=rgb[:, None].expand(-1, shading.shape[1]),
        shading_covered=shading,
        normals_covered=pixel_normals,
        region_masks=_region_masks(vertex_masks, fragments, faces),
    )
