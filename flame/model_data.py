"""Plain containers for the arrays of a FLAME-format head model.

Loaders in :mod:`flamefit.flame` return these; :class:`flamefit.flame.FLAME` consumes them. Everything here is
numpy, in FLAME's model space (metres, y up, +z toward the viewer), so the containers can be
built from the real FLAME files, from the converted ``.npz`` form, the open model or the procedural test head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FlameModelData:
    """The arrays of a FLAME-format model (``generic_model.pkl``, ``flame2023.pkl``, ``.npz``).

    Attributes:
        v_template: ``(V, 3)`` float64, the mean head in model space (metres).
        faces: ``(F, 3)`` int64 vertex indices of the triangles.
        shapedirs: ``(V, 3, S)`` float64 identity blendshapes (unit-variance coefficients).
        exprdirs: ``(V, 3, E)`` float64 expression blendshapes (unit-variance coefficients).
        posedirs: ``(V, 3, 9 * (J - 1))`` float64 pose-corrective blendshapes; column
            ``9 * (j - 1) + 3 * r + c`` multiplies ``(R_j - I)[r, c]`` of joint ``j >= 1``.
        j_regressor: ``(J, V)`` float64 dense joint regressor.
        weights: ``(V, J)`` float64 skinning weights (rows sum to 1).
        parents: ``(J,)`` int64 kinematic parents, ``parents[0] == -1``. FLAME's joints are
            global (root), neck, jaw, left eye, right eye: parents ``[-1, 0, 1, 1, 1]``.
        source: path (or description) of the file the arrays came from.
        is_demo: True for the procedural test head (a test fixture), False otherwise.
        extras: anything else the file held that the layer does not need (``J``,
            ``bs_style``, ``bs_type``, ``model_name`` ...), kept for ``flamefit inspect``.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    source: str = ""
    is_demo: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def n_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def n_expression(self) -> int:
        return int(self.exprdirs.shape[2])


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Where the 68 landmarks sit on the mesh, as triangles and barycentric coordinates.

    The 68 2D-fitting landmarks are the 17 yaw-dependent contour points (a row of the dynamic
    table, picked by the head's yaw) followed by the 51 static ones, as DECA orders them.

    Attributes:
        static_faces: ``(51, )`` int64 triangle index per static landmark (brows, eyes, nose, mouth).
        static_bary: ``(51, 3)`` float64 barycentric coordinates in those triangles.
        dynamic_faces: ``(79, 17)`` int64 contour triangles per yaw bin. Row ``y`` for yaw
            ``y`` degrees (0..39), row ``39 - y`` for negative yaw ``y`` (-1..-39 -> 40..78).
        dynamic_bary: ``(79, 17, 3)`` float64.
        full_faces: ``(68, )`` int64 the fixed 68 3D landmarks (contour not yaw-dependent).
        full_bary: ``(68, 3)`` float64.
        source: path(s) the embedding was read from.
    """

    static_faces: np.ndarray
    static_bary: np.ndarray
    dynamic_faces: np.ndarray
    dynamic_bary: np.ndarray
    full_faces: np.ndarray
    full_bary: np.ndarray
    source: str = ""


@dataclass(frozen=True)
class UVTemplate:
    """Faces and texture coordinates of the UV template (``head_template_mesh.obj``).

    Attributes:
        faces: ``(F, 3)`` int64 vertex indices (must equal the model's faces).
        vt: ``(T, 2)`` float64 texture coordinates in [0, 1], OBJ convention (v = 0 at the
            bottom row of the texture image). T > V because seams duplicate coordinates.
        ft: ``(F, 3)`` int64 indices into ``vt`` per face corner.
        n_vertices: number of ``v`` lines in the file (5023 for FLAME).
        source: the path.
    """

    faces: np.ndarray
    vt: np.ndarray
    ft: np.ndarray
    n_vertices: int
    source: str = ""


@dataclass(frozen=True)
class TextureSpace:
    """A linear albedo model in UV space: ``albedo = mean + basis @ coefficients``.

    Stored on disk in the official layouts (``FLAME_texture.npz``: BGR, 0-255;
    ``FLAME_albedo_from_BFM.npz``: BGR, 0-1); held here always as RGB in [0, 1].
    Image rows follow the texture image: row 0 is the top (v = 1 in OBJ convention).

    Attributes:
        mean: ``(H, W, 3)`` float32 RGB in [0, 1].
        basis: ``(H, W, 3, K)`` float32 RGB per unit coefficient.
        vt: ``(T, 2)`` texture coordinates shipped with the space, or None.
        ft: ``(F, 3)`` texture-coordinate indices shipped with the space, or None.
        source: the path.
        metadata: anything else the file held (our own spaces: ``n_photos``,
            ``explained_variance``, ``resolution``, ``round``).
    """

    mean: np.ndarray
    basis: np.ndarray
    vt: np.ndarray | None = None
    ft: np.ndarray | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[3])

    @property
    def resolution(self) -> int:
        return int(self.mean.shape[0])
