"""Differentiable renderer in plain PyTorch (CPU and CUDA), nvdiffrast optional on CUDA.

Modules, one job each:

* :mod:`renderer.rasterize` — ``rasterize(vertices_screen, faces, image_size, ...) -> Fragments``
* :mod:`renderer.interpolate` — ``interpolate(attributes, fragments, faces)``
* :mod:`renderer.cameras` — ``OrthographicCamera`` (DECA ``[s, tx, ty]``), ``PerspectiveCamera``
* :mod:`renderer.shading` — normals and DECA's 9-coefficient SH lighting
* :mod:`renderer.texturing` — UV texture sampling, region masks
* :mod:`renderer.render` — ``render_textured`` / ``render_shape``
* :mod:`renderer.nvdiffrast_backend` — the optional nvdiffrast visibility pass
* :mod:`renderer.visualize` — shape renders, overlays, landmarks, sheets, animations
* :mod:`renderer.export` — OBJ/MTL/PNG, PLY, GLB

Conventions: screen space is pixels, origin top-left, x right, y down, pixel centres at
integer + 0.5, smaller depth = nearer; images are ``(B, C, H, W)``; per-pixel rasteriser
outputs ``(B, H, W, ...)``; model space is FLAME's (metres, y up, +z toward the viewer).
"""

from __future__ import annotations

from flame.lazy import lazy_getattr

_EXPORTS = {
    "Fragments": "renderer.fragments",
    "rasterize": "renderer.rasterize",
    "rasterize_visibility": "renderer.rasterize",
    "fragments_from_face_index": "renderer.rasterize",
    "interpolate": "renderer.interpolate",
    "interpolate_covered": "renderer.interpolate",
    "OrthographicCamera": "renderer.cameras",
    "PerspectiveCamera": "renderer.cameras",
    "front_facing_rotation": "renderer.cameras",
    "face_normals": "renderer.shading",
    "vertex_normals": "renderer.shading",
    "sh_basis": "renderer.shading",
    "sh_shading": "renderer.shading",
    "rotate_sh_light": "renderer.shading",
    "constant_light": "renderer.shading",
    "SH_CONSTANT_FACTORS": "renderer.shading",
    "sample_texture": "renderer.texturing",
    "face_corner_uvs": "renderer.texturing",
    "region_mask": "renderer.texturing",
    "RenderOutput": "renderer.render",
    "render_textured": "renderer.render",
    "render_shape": "renderer.render",
    "shape_light": "renderer.render",
    "nvdiffrast_available": "renderer.nvdiffrast_backend",
    "NvdiffrastUnavailable": "renderer.nvdiffrast_backend",
    "shape_image": "renderer.visualize",
    "textured_image": "renderer.visualize",
    "overlay": "renderer.visualize",
    "draw_landmarks": "renderer.visualize",
    "make_sheet": "renderer.visualize",
    "save_animation": "renderer.visualize",
    "to_uint8": "renderer.visualize",
    "save_obj": "renderer.export",
    "save_ply": "renderer.export",
    "save_glb": "renderer.export",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("renderer", _EXPORTS)
