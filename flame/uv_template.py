"""Read the UV layout of a FLAME-format mesh from ``head_template_mesh.obj``.

Only the triangles (``f v/vt`` or ``f v/vt/vn``) and texture coordinates (``vt``) are used; vertex
positions come from the model. ``v`` lines are counted so the file can be matched to the model.
CRLF line endings, comments, ``mtllib`` / ``usemtl`` / ``o`` / ``g`` / ``s`` lines and ``vn``
lines are accepted; a missing ``.mtl`` does not matter because it is never opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_data import UVTemplate


def _parse_faces(path: Path, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(F, 3)`` 0-based vertex and texture indices from ``f`` lines (without the ``f``)."""
    corners = [line.split() for line in lines]
    counts = np.fromiter((len(c) for c in corners), dtype=np.int64, count=len(corners))
    if np.any(counts != 3):
        bad = int(np.flatnonzero(counts != 3)[0])
        raise ModelFileError(
            path,
            f"face {bad + 1} has {counts[bad]} corners; only triangles are supported: triangulate the mesh "
            "(FLAME's head_template_mesh.obj is all triangles).",
        )
    fields = [corner.split("/") for face in corners for corner in face]
    if any(len(parts) < 2 or not parts[1] for parts in fields):
        raise ModelFileError(path, "faces have no texture indices (need 'f v/vt' or 'f v/vt/vn'); is this a UV template?")
    try:
        vertex = np.array([parts[0] for parts in fields], dtype=np.int64).reshape(-1, 3)
        texture = np.array([parts[1] for parts in fields], dtype=np.int64).reshape(-1, 3)
    except ValueError as error:
        raise ModelFileError(path, f"has an unreadable face index ({error}); the file is corrupt.") from error
    if vertex.size and (vertex.min() < 1 or texture.min() < 1):
        raise ModelFileError(
            path, "uses zero or relative (negative) face indices; re-export it with absolute 1-based indices."
        )
    return vertex - 1, texture - 1


def _parse_vt(path: Path, lines: list[str]) -> np.ndarray:
    """``(T, 2)`` float64 texture coordinates from ``vt`` lines (without the ``vt``)."""
    try:
        values = [line.split()[:2] for line in lines]
        vt = np.array(values, dtype=np.float64)
    except ValueError as error:
        raise ModelFileError(path, f"has an unreadable 'vt' line ({error}); the file is corrupt.") from error
    if vt.ndim != 2 or vt.shape[1] != 2:
        raise ModelFileError(path, "has a 'vt' line with fewer than two coordinates; the file is corrupt.")
    if not np.isfinite(vt).all():
        raise ModelFileError(path, "has NaN or infinite texture coordinates; the file is corrupt.")
    return vt


def load_uv_template(
    path: str | Path, n_vertices: int | None = None, faces: np.ndarray | None = None
) -> UVTemplate:
    """Load the faces and texture coordinates of ``head_template_mesh.obj``.

    Args:
        path: the OBJ file.
        n_vertices: the model's vertex count; the file's ``v`` lines must match it.
        faces: the model's ``(F, 3)`` triangles; the file's must be identical.

    Returns:
        :class:`UVTemplate` with ``faces (F, 3)`` int64 (0-based), ``vt (T, 2)`` float64 in the OBJ
        convention (v = 0 at the bottom of the texture image), ``ft (F, 3)`` int64 and the
        number of ``v`` lines.

    Raises:
        ModelFileError: missing or unreadable file, non-triangle faces, faces without texture
            indices, indices out of range, or a mismatch with the model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found; download head_template_mesh.obj from the FLAME website or check the path.")
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.splitlines()
    vertex_count = sum(1 for line in lines if line.startswith("v ") or line.startswith("v\t"))
    vt_lines = [line[3:] for line in lines if line.startswith("vt ") or line.startswith("vt\t")]
    face_lines = [line[2:] for line in lines if line.startswith("f ") or line.startswith("f\t")]
    if not face_lines or not vt_lines:
        raise ModelFileError(
            path, f"has {len(face_lines)} face and {len(vt_lines)} 'vt' lines; a UV template needs both. Is this head_template_mesh.obj?"
        )
    vertex_faces, texture_faces = _parse_faces(path, face_lines)
    vt = _parse_vt(path, vt_lines)
    if vertex_faces.max() >= vertex_count:
        raise ModelFileError(
            path, f"faces refer to vertex {int(vertex_faces.max()) + 1} but the file has {vertex_count} 'v' lines; the file is corrupt."
        )
    if texture_faces.max() >= vt.shape[0]:
        raise ModelFileError(
            path, f"faces refer to texture coordinate {int(texture_faces.max()) + 1} but the file has {vt.shape[0]}; the file is corrupt."
        )
    if n_vertices is not None and vertex_count != n_vertices:
        raise ModelFileError(
            path, f"has {vertex_count} vertices but the model has {n_vertices}; is this the UV template of another model?"
        )
    if faces is not None:
        model_faces = np.asarray(faces)
        if model_faces.shape != vertex_faces.shape:
            raise ModelFileError(
                path, f"has {vertex_faces.shape[0]} faces but the model has {model_faces.shape[0]}; is this the UV template of another model?"
            )
        differing = np.flatnonzero(np.any(model_faces != vertex_faces, axis=1))
        if differing.size:
            raise ModelFileError(
                path,
                f"faces differ from the model's ({differing.size} of them, first face {int(differing[0])}); "
                "use the head_template_mesh.obj that belongs to this model.",
            )
    return UVTemplate(faces=vertex_faces, vt=vt, ft=texture_faces, n_vertices=vertex_count, source=str(path))
