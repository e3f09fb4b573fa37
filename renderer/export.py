"""Mesh export: OBJ + MTL + PNG texture, PLY, GLB.

All meshes are written in **model space** (metres, y up, +z toward the viewer); pass projected
vertices yourself for an image-aligned copy. Every file is written to a temporary name in the
target folder and moved into place (``os.replace``), so a crash never leaves half a file.
UVs follow the OBJ convention (v = 0 at the bottom of the texture image, whose row 0 is the top).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from flamefit.utils import atomic_write

__all__ = ["save_obj", "save_ply", "save_glb", "atomic_write_bytes"]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    return atomic_write(path, lambda stream: stream.write(data))


def _as_numpy(array, dtype=None) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    return array.astype(dtype) if dtype is not None else array


def _texture_png_bytes(texture) -> bytes:
    """``(H, W, 3)`` RGB float in [0, 1] or uint8 (or ``(3, H, W)`` tensor) -> PNG bytes."""
    from PIL import Image

    image = _as_numpy(texture)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = np.transpose(image, (1, 2, 0))
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = _as_numpy(vertices, np.float64)
    faces = _as_numpy(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces index vertices outside [0, {len(vertices)})")
    return vertices, faces


def save_obj(path, vertices, faces, vt=None, ft=None, texture=None, material_name: str = "albedo") -> Path:
    """Write a Wavefront OBJ, plus ``<stem>.mtl`` and ``<stem>.png`` when a texture is given.

    Args:
        path: target ``.obj``.
        vertices: ``(V, 3)`` model space. faces: ``(F, 3)`` 0-based vertex indices.
        vt: ``(T, 2)`` OBJ texture coordinates; ft: ``(F, 3)`` indices into ``vt`` (seams).
        texture: ``(Ht, Wt, 3)`` RGB (uint8, or float in [0, 1]); needs ``vt``/``ft``.
        material_name: the ``newmtl``/``usemtl`` name.

    Returns:
        The OBJ path. The MTL names the PNG with ``map_Kd`` (relative path), which Blender and
        MeshLab resolve next to the OBJ.
    """
    path = Path(path)
    vertices, faces = _check_mesh(vertices, faces)
    has_uv = vt is not None and ft is not None
    if texture is not None and not has_uv:
        raise ValueError("a texture needs vt and ft")
    lines = ["# written by flamefit (model space, metres, y up, +z toward the viewer)"]
    if texture is not None:
        lines.append(f"mtllib {path.stem}.mtl")
    lines += [f"v {x:.8g} {y:.8g} {z:.8g}" for x, y, z in vertices]
    if has_uv:
        vt = _as_numpy(vt, np.float64)
        ft = _as_numpy(ft, np.int64)
        if ft.shape != faces.shape or (ft.size and (ft.min() < 0 or ft.max() >= len(vt))):
            raise ValueError(f"ft must be (F, 3) indices into vt's {len(vt)} rows, got shape {ft.shape}")
        lines += [f"vt {u:.8g} {v:.8g}" for u, v in vt]
    if texture is not None:
        lines.append(f"usemtl {material_name}")
    if has_uv:
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(faces, ft)]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    if texture is not None:
        png = f"{path.stem}.png"
        atomic_write_bytes(path.with_suffix(".png"), _texture_png_bytes(texture))
        mtl = "\n".join([
            f"newmtl {material_name}",
            "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", "d 1", "illum 1",
            f"map_Kd {png}", "",
        ])
        atomic_write_bytes(path.with_suffix(".mtl"), mtl.encode())
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def save_ply(path, vertices, faces, vertex_colors=None) -> Path:
    """Write a binary little-endian PLY, with optional per-vertex RGB colours.

    Args:
        path: target ``.ply``. vertices: ``(V, 3)`` model space. faces: ``(F, 3)``.
        vertex_colors: ``(V, 3)`` RGB uint8 or float in [0, 1], or None.
    """
    vertices, faces = _check_mesh(vertices, faces)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertices)}",
              "property float x", "property float y", "property float z"]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if vertex_colors is not None:
        colors = _as_numpy(vertex_colors)
        if colors.shape != vertices.shape:
            raise ValueError(f"vertex_colors must be (V, 3) = {vertices.shape}, got {colors.shape}")
        if colors.dtype != np.uint8:
            colors = (np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    vertex_rows = np.zeros(len(vertices), dtype=fields)
    vertex_rows["x"], vertex_rows["y"], vertex_rows["z"] = vertices.T
    if vertex_colors is not None:
        vertex_rows["red"], vertex_rows["green"], vertex_rows["blue"] = colors.T
    face_rows = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_rows["n"] = 3
    face_rows["i"] = faces
    data = ("\n".join(header) + "\n").encode() + vertex_rows.tobytes() + face_rows.tobytes()
    return atomic_write_bytes(path, data)


def _albedo_material(image):
    """A glTF PBR material that shows ``image`` (a PIL image or None) as it is: base colour
    factor white (trimesh's default 0.4 grey would darken the texture in every viewer),
    not metallic (glTF's default metallic 1 renders near-black without an environment map),
    fully rough (the albedo holds no specular)."""
    import trimesh

    return trimesh.visual.material.PBRMaterial(
        name="albedo", baseColorTexture=image, baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0, roughnessFactor=1.0)


def save_glb(path, vertices, faces, vt=None, ft=None, texture=None) -> Path:
    """Write a binary glTF (GLB) via trimesh, with the albedo texture embedded.

    glTF stores one UV per vertex, so vertices are split where ``ft`` gives a corner another
    UV (seams); positions are unchanged.

    Args:
        path: target ``.glb``. vertices: ``(V, 3)`` model space. faces: ``(F, 3)``.
        vt, ft: OBJ texture coordinates and per-corner indices (optional).
        texture: ``(Ht, Wt, 3)`` RGB uint8 or float in [0, 1] (optional; needs vt/ft), embedded
            as PNG in the file (self-contained).

    The material is white, non-metallic and fully rough, so viewers (three.js, Blender) show
    the albedo unchanged.
    """
    import trimesh
    from PIL import Image

    vertices, faces = _check_mesh(vertices, faces)
    if vt is not None and ft is not None:
        vt = _as_numpy(vt, np.float64)
        ft = _as_numpy(ft, np.int64)
        pairs = np.stack([faces.reshape(-1), ft.reshape(-1)], axis=1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        mesh_vertices = vertices[unique[:, 0]]
        mesh_faces = inverse.reshape(-1, 3)
        uv = vt[unique[:, 1]]
        image = None
        if texture is not None:
            image = Image.open(io.BytesIO(_texture_png_bytes(texture)))
        visual = trimesh.visual.TextureVisuals(uv=uv, material=_albedo_material(image))
        mesh = trimesh.Trimesh(mesh_vertices, mesh_faces, visual=visual, process=False)
    else:
        if texture is not None:
            raise ValueError("a texture needs vt and ft")
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        mesh.visual.material = _albedo_material(None)
    data = trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh))
    return atomic_write_bytes(path, data)
