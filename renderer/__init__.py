"""Differentiable renderer in plain PyTorch (CPU and CUDA), nvdiffrast optional on CUDA.

Modules, one job each:

* :mod:`flamefit.renderer.rasterize` — ``rasterize(vertices_screen, faces, image_size, ...) -> Fragments``
* :mod:`flamefit.renderer.interpolate` — ``interpolate(attributes, fragments, faces)``
* :mod:`flamefit.renderer.cameras` — ``OrthographicCamera`` (DECA ``[s, tx, ty]``), ``PerspectiveCamera``
* :mod:`flamefit.renderer.camera_models` — ``camera_model(name)``: what a fit's camera parameters
  mean (initial values, renderer camera, start from a similarity, OpenCV ``K, R, t`` and back)
* :mod:`flamefit.renderer.shading` — normals and DECA's 9-coefficient SH lighting
* :mod:`flamefit.renderer.texturing` — UV texture sampling, region masks
* :mod:`flamefit.renderer.render` — ``render_textured`` / ``render_shape``
* :mod:`flamefit.renderer.nvdiffrast_backend` — the optional nvdiffrast visibility pass
* :mod:`flamefit.renderer.visualize` — shape renders, overlays, landmarks, sheets, animations
* :mod:`flamefit.renderer.export` — OBJ/MTL/PNG, PLY, GLB
* :mod:`flamefit.renderer.pixel_frames` — pixel-index (OpenCV) <-> screen coordinates

Conventions: screen space is pixels, origin top-left, x right, y down, pixel centres at
integer + 0.5, smaller depth = nearer; images are ``(B, C, H, W)``; per-pixel rasteriser
outputs ``(B, H, W, ...)``; model space is FLAME's (metres, y up, +z toward the viewer).
"""

from __future__ import annotations

from flamefit.utils import lazy_getattr

_EXPORTS = {
    "Fragments": "flamefit.renderer.fragments",
    "index_to_screen": "flamefit.renderer.pixel_frames",
    "screen_to_index": "flamefit.renderer.pixel_frames",
    "rasterize": "flamefit.renderer.rasterize",
    "rasterize_visibility": "flamefit.renderer.rasterize",
    "fragments_from_face_index": "flamefit.renderer.rasterize",
    "interpolate": "flamefit.renderer.interpolate",
    "interpolate_covered": "flamefit.renderer.interpolate",
    "OrthographicCamera": "flamefit.renderer.cameras",
    "PerspectiveCamera": "flamefit.renderer.cameras",
    "front_facing_rotation": "flamefit.renderer.cameras",
    "CameraModel": "flamefit.renderer.camera_models",
    "OrthographicCameraModel": "flamefit.renderer.camera_models",
    "PerspectiveCameraModel": "flamefit.renderer.camera_models",
    "camera_model": "flamefit.renderer.camera_models",
    "face_normals": "flamefit.renderer.shading",
    "vertex_normals": "flamefit.renderer.shading",
    "sh_basis": "flamefit.renderer.shading",
    "sh_shading": "flamefit.renderer.shading",
    "rotate_sh_light": "flamefit.renderer.shading",
    "constant_light": "flamefit.renderer.shading",
    "SH_CONSTANT_FACTORS": "flamefit.renderer.shading",
    "sample_texture": "flamefit.renderer.texturing",
    "face_corner_uvs": "flamefit.renderer.texturing",
    "region_mask": "flamefit.renderer.texturing",
    "RenderOutput": "flamefit.renderer.render",
    "render_textured": "flamefit.renderer.render",
    "render_shape": "flamefit.renderer.render",
    "shape_light": "flamefit.renderer.render",
    "nvdiffrast_available": "flamefit.renderer.nvdiffrast_backend",
    "NvdiffrastUnavailable": "flamefit.renderer.nvdiffrast_backend",
    "shape_image": "flamefit.renderer.visualize",
    "textured_image": "flamefit.renderer.visualize",
    "overlay": "flamefit.renderer.visualize",
    "draw_landmarks": "flamefit.renderer.visualize",
    "make_sheet": "flamefit.renderer.visualize",
    "save_animation": "flamefit.renderer.visualize",
    "to_uint8": "flamefit.renderer.visualize",
    "save_obj": "flamefit.renderer.export",
    "save_ply": "flamefit.renderer.export",
    "save_glb": "flamefit.renderer.export",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("flamefit.renderer", _EXPORTS)
