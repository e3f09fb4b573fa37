"""Unwrap fitted photos into UV space: a de-lit albedo map and a confidence per texel.

For every texel of the UV layout (:func:`texel_surface`: its triangle and barycentrics from
:func:`flamefit.texture_space.uv_raster.rasterize_uv`) and every photo of a batch (:func:`unwrap_photos`):

1. its surface point and normal on the *fitted, posed* mesh (model space), interpolated from
   the triangle's vertices and vertex normals (the normals the renderer shades with);
2. the point projected with the fitted camera into the photo crop (screen space: pixels, origin
   at the crop's top-left corner, x right, y down). The fit's camera is defined on the crop
   square, so any crop of the same square at another resolution ``R`` (e.g. 512 for a fit at
   224) is addressed by the same parameters with ``image_size = (R, R)``;
3. the photo sampled there bilinearly (``grid_sample``, ``align_corners=False``: the screen
   convention maps exactly onto it);
4. visibility: inside the crop, on a pixel the rendered mesh covers fully (no background mixed
   in by the bilinear sample), in front (the texel's depth agrees with the depth buffer at
   that pixel, or its triangle is the one the rasteriser kept there), facing the camera
   (cosine of the viewing angle above ``min_cosine``), lit enough (every channel's shading
   above ``min_shading``), and inside the photo's skin weight (skin probability x crop area
   inside the photo x optional user mask);
5. de-lighting: the colour divided by the fitted SH shading at the texel's normal.

``confidence = cos(view angle)^cosine_power * skin weight`` on visible texels, 0 elsewhere;
albedo is clipped to [0, 1] and 0 where the confidence is 0. All of it is batched torch on
the scene's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from flamefit.renderer.interpolate import blend_corners
from flamefit.renderer.render import rasterize_with_camera
from flamefit.renderer.shading import sh_shading, vertex_normals
from flamefit.renderer.triangles import gather_corners
from flamefit.texture_space.uv_raster import rasterize_uv


@dataclass(frozen=True)
class TexelSurface:
    """The surface point behind each covered texel of a square UV layout.

    Attributes:
        resolution: ``H = W`` of the UV maps.
        texel: ``(M,)`` int64 flat index ``row * W + col`` of the covered texels (row 0 = top,
            v = 1).
        face: ``(M,)`` int64 triangle (index into the model's faces) under each texel.
        bary: ``(M, 3)`` float32 barycentric weights of the texel centre in that triangle.
    """

    resolution: int
    texel: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor

    @property
    def n_texels(self) -> int:
        return int(self.texel.shape[0])

    def to(self, device) -> "TexelSurface":
        return TexelSurface(self.resolution, self.texel.to(device), self.face.to(device), self.bary.to(device))

    def region_texels(self, faces: torch.Tensor, vertex_region: torch.Tensor) -> torch.Tensor:
        """``(M,)`` bool: texels whose triangle has all three vertices in ``vertex_region (V,)``."""
        corners = faces.to(self.face.device)[self.face]  # (M, 3)
        return vertex_region.to(self.face.device)[corners].all(dim=1)

    def dense(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Scatter per-texel ``values (B, M, ...)`` into dense maps ``(B, H, W, ...)``."""
        batch = values.shape[0]
        side = self.resolution
        out = values.new_full((batch, side * side) + tuple(values.shape[2:]), fill)
        out[:, self.texel] = values
        return out.view(batch, side, side, *values.shape[2:])


def texel_surface(vt: np.ndarray | torch.Tensor, ft: np.ndarray | torch.Tensor, resolution: int,
                  device: torch.device | str = "cpu") -> TexelSurface:
    """Rasterise the UV layout at ``resolution`` (texel centres) into a :class:`TexelSurface`.

    Args:
        vt: ``(T, 2)`` texture coordinates (OBJ convention, v up).
        ft: ``(F, 3)`` texture-coordinate indices per triangle corner.
        resolution: side of the square UV maps.
    """
    vt = vt.detach().cpu().numpy() if isinstance(vt, torch.Tensor) else np.asarray(vt)
    ft = ft.detach().cpu().numpy() if isinstance(ft, torch.Tensor) else np.asarray(ft)
    face_index, barycentrics = rasterize_uv(vt, ft, (resolution, resolution))
    flat_face = face_index.reshape(-1)
    covered = np.nonzero(flat_face >= 0)[0]
    if covered.size == 0:
        raise ValueError(f"the UV layout covers no texel centre at {resolution}²; check vt/ft or use a larger resolution")
    return TexelSurface(
        resolution=int(resolution),
        texel=torch.as_tensor(covered, dtype=torch.long, device=device),
        face=torch.as_tensor(flat_face[covered], dtype=torch.long, device=device),
        bary=torch.as_tensor(barycentrics.reshape(-1, 3)[covered], dtype=torch.float32, device=device),
    )


@dataclass
class UnwrappedTextures:
    """Per-photo UV maps from :func:`unwrap_photos`.

    Attributes:
        albedo: ``(B, H, W, 3)`` de-lit RGB albedo in [0, 1], row 0 = top (v = 1); 0 where unseen.
        confidence: ``(B, H, W)`` in [0, 1]; 0 = not seen.
        colour: ``(B, H, W, 3)`` the photo's colour at the texel before de-lighting (0 where unseen).
        shading: ``(B, H, W, 3)`` the fitted SH shading at the texel's normal (0 where uncovered).
    """

    albedo: torch.Tensor
    confidence: torch.Tensor
    colour: torch.Tensor
    shading: torch.Tensor


def _blend(values: torch.Tensor, faces: torch.Tensor, surface: TexelSurface) -> torch.Tensor:
    """Per-vertex ``values (B, V, C)`` -> ``(B, M, C)`` interpolated at the texels' surface points."""
    batch, _, channels = values.shape
    corners = gather_corners(values, faces[surface.face])  # (C, 3, B * M)
    blended = blend_corners(corners, surface.bary.repeat(batch, 1))  # (C, B * M)
    return blended.view(channels, batch, -1).permute(1, 2, 0)


def view_cosines(camera, points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """``(B, M)`` cosine between unit model-space ``normals (B, M, 3)`` and the direction from
    ``points (B, M, 3)`` toward the camera (orthographic: +z of model space)."""
    if not camera.is_perspective:
        return normals[..., 2]
    centre = -(camera.R.transpose(1, 2) @ camera.t[:, :, None])[:, None, :, 0]  # (B, 1, 3) model space
    towards = F.normalize(centre - points, dim=-1)
    return (normals * towards).sum(dim=-1)


def _sample(image: torch.Tensor, screen_xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``(B, M, C)`` of ``image (B, C, R, R)`` at screen points ``(B, M, 2)``."""
    height, width = image.shape[-2:]
    grid = torch.stack([screen_xy[..., 0] / width * 2 - 1, screen_xy[..., 1] / height * 2 - 1], dim=-1)
    sampled = F.grid_sample(image, grid[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[..., 0].transpose(1, 2)


@torch.no_grad()
def unwrap_photos(
    scene,
    params,
    photos: torch.Tensor,
    weights: torch.Tensor,
    surface: TexelSurface,
    *,
    min_shading: float = 0.1,
    min_cosine: float = 0.15,
    cosine_power: float = 1.0,
    depth_tolerance: float = 0.01,
) -> UnwrappedTextures:
    """Unwrap B fitted photo crops into de-lit UV albedo maps with per-texel confidence.

    Args:
        scene: the :class:`flamefit.fitting.scene.HeadScene` that was fitted (its model and camera type).
        params: the fitted :class:`flamefit.fitting.parameters.FitParameters` (batch B).
        photos: ``(B, 3, R, R)`` RGB crops in [0, 1] of the fit's crop square, at any ``R``.
        weights: ``(B, 1, R, R)`` in [0, 1], which pixels may be used (skin probability x crop
            area inside the photo x user mask); bilinearly resampled at the texels.
        surface: :func:`texel_surface` of the scene's UV layout at the output resolution.
        min_shading: texels whose fitted shading is below this in any channel are not used
            (dividing by a tiny shading amplifies noise).
        min_cosine: texels seen at a grazing angle (cosine below this) are not used.
        cosine_power: confidence is ``cos^cosine_power`` times the sampled weight.
        depth_tolerance: a texel is in front when its depth is within this fraction of the
            mesh's depth extent (per photo) of the depth buffer at its pixel.

    Returns:
        :class:`UnwrappedTextures` (on the photos' device).
    """
    device = photos.device
    surface = surface.to(device)
    resolution = photos.shape[-1]
    if photos.shape[-2] != resolution or weights.shape[-2:] != photos.shape[-2:]:
        raise ValueError(f"photos {tuple(photos.shape)} and weights {tuple(weights.shape)} must be square crops of one size")
    faces = scene.flame.faces.to(device).long()
    vertices = scene.flame(shape=params.shape, expression=params.expression, pose=params.pose).vertices
    points = _blend(vertices, faces, surface)  # (B, M, 3) model space
    normals = F.normalize(_blend(vertex_normals(vertices, faces), faces, surface), dim=-1)
    camera = scene.camera(params, resolution)
    screen = camera.project(points)  # (B, M, 3): px, py, depth (smaller = nearer)

    fragments = rasterize_with_camera(vertices, camera, faces, backend=scene.backend)
    batch = photos.shape[0]
    col = screen[..., 0].floor().long()
    row = screen[..., 1].floor().long()
    inside = (col >= 0) & (col < resolution) & (row >= 0) & (row < resolution)
    flat = (row.clamp(0, resolution - 1) * resolution + col.clamp(0, resolution - 1))
    depth_buffer = fragments.depth.reshape(batch, -1).gather(1, flat)
    face_buffer = fragments.face_index.reshape(batch, -1).gather(1, flat)
    vertex_depth = camera.project(vertices)[..., 2]
    tolerance = depth_tolerance * (vertex_depth.amax(dim=1) - vertex_depth.amin(dim=1))[:, None]
    in_front = (face_buffer == surface.face[None]) | (screen[..., 2] <= depth_buffer + tolerance)
    fully_covered = _sample(fragments.alpha(photos.dtype), screen[..., :2])[..., 0] > 0.999

    cosine = view_cosines(camera, points, normals)
    shading = sh_shading(normals, params.light.to(normals.dtype))  # (B, M, 3)
    colour = _sample(photos, screen[..., :2])
    weight = _sample(weights, screen[..., :2])[..., 0].clamp(0, 1)
    visible = inside & in_front & fully_covered & (cosine > min_cosine) & (shading.amin(dim=-1) > min_shading)
    confidence = torch.where(visible, cosine.clamp_min(0).pow(cosine_power) * weight, torch.zeros_like(weight))
    seen = (confidence > 0)[..., None]
    albedo = torch.where(seen, (colour / shading.clamp_min(min_shading)).clamp(0, 1), torch.zeros_like(colour))
    return UnwrappedTextures(
        albedo=surface.dense(albedo),
        confidence=surface.dense(confidence),
        colour=surface.dense(torch.where(seen, colour, torch.zeros_like(colour))),
        shading=surface.dense(shading),
    )


def resample_weights(weights: torch.Tensor, resolution: int) -> torch.Tensor:
    """``(B, 1, r, r)`` pixel weights of a crop -> the same crop square at ``resolution`` (bilinear)."""
    if weights.shape[-1] == resolution:
        return weights
    return F.interpolate(weights, size=(resolution, resolution), mode="bilinear", align_corners=False).clamp(0, 1)
