"""The converted ICT head's topology: which upstream geometry is kept, triangles, one UV atlas,
and the fixed linear map from ICT's vertices to ours.

ICT's face region (9409 vertices, 18 460 triangles once its quads are split) and mouth socket
are finer than fitting needs and would make every fit step cost ~1.75x the project's former
default head. They are simplified once, on the neutral mesh, by quadric edge collapse (pyfqmr,
their borders kept, so they stay stitched to the rest); each vertex of the result is then tied
to the neutral surface as a barycentric combination of three ICT vertices. That map is linear
and the same for every mode, so identities and expressions keep their correspondence: our
vertex ``i`` is ``sum_k bary[i, k] * ict_vertex[corners[i, k]]`` for the neutral mesh and for
every shape. Vertices of the other parts (and the borders) map one to one.

UVs: ICT spreads them over UDIM tiles (face in tile 0, head and sockets in tile 1, each eyeball
over tile 0 again); they are packed into one atlas (:data:`ATLAS`), each eye in its own square. The face and the mouth socket
are seamless UV charts, so a simplified vertex gets the barycentric mix of its corners' UVs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Range = tuple[int, int]

#: The kept parts, in the order their triangles are written, and the atlas region of each.
PART_NAMES = ("face", "head_neck", "mouth_socket", "eye_sockets", "left_eyeball", "right_eyeball")
PART_REGIONS = ("face", "head", "head", "head", "left_eye", "right_eye")


@dataclass(frozen=True)
class UpstreamLayout:
    """Where the kept geometry lies in an ICT-FaceKit checkout's neutral mesh.

    ICT's README tabulates, for each geometry of ``generic_neutral_mesh.obj``, its vertex and
    polygon indices; this holds the rows the converter keeps, as half-open ``(first, end)``
    ranges (the README's ``[a:b]`` is inclusive: ``(a, b + 1)`` here), with the number of
    triangles the face and the mouth socket are simplified to (None: kept as they are).
    :data:`ICT_LIGHT` is ICT-FaceKit Light's table; a test converts a small checkout of the same
    layout with smaller ranges.

    Attributes:
        name: named in errors (``... has 12 vertices, ICT-FaceKit Light has 26719``).
        n_vertices, n_polygons: of the whole neutral mesh (every shape OBJ has as many vertices).
        face_vertices: the full face area (README's "Face"); landmarks lie on it.
        narrow_face_vertices: README's "Narrow face area" (a prefix of the face's vertices).
        head_neck_vertices, mouth_socket_vertices: README's "Head and Neck", "Mouth socket".
        eye_socket_vertices: both eye sockets (left then right, contiguous).
        left_eyeball_vertices, right_eyeball_vertices: the outer eyeball (README's "Sclera"),
            which includes the cornea's bulge. ICT's "Iris" is an inner sphere behind that
            cornea (see-through in ICT's shaders, opaque in a plain renderer): it is left out,
            and the iris and pupil are painted on the outer eyeball instead.
        face_polygons, head_neck_polygons, mouth_socket_polygons, eye_socket_polygons,
            left_eyeball_polygons, right_eyeball_polygons: the polygon ranges of the kept parts
            (both eye sockets as one range).
        face_triangles, mouth_socket_triangles: simplification targets, or None.
    """

    name: str
    n_vertices: int
    n_polygons: int
    face_vertices: Range
    narrow_face_vertices: Range
    head_neck_vertices: Range
    mouth_socket_vertices: Range
    eye_socket_vertices: Range
    left_eyeball_vertices: Range
    right_eyeball_vertices: Range
    face_polygons: Range
    head_neck_polygons: Range
    mouth_socket_polygons: Range
    eye_socket_polygons: Range
    left_eyeball_polygons: Range
    right_eyeball_polygons: Range
    face_triangles: int | None
    mouth_socket_triangles: int | None

    def __post_init__(self) -> None:
        vertex_ranges = ("face_vertices", "narrow_face_vertices", "head_neck_vertices",
                         "mouth_socket_vertices", "eye_socket_vertices", "left_eyeball_vertices",
                         "right_eyeball_vertices")
        polygon_ranges = ("face_polygons", "head_neck_polygons", "mouth_socket_polygons",
                          "eye_socket_polygons", "left_eyeball_polygons", "right_eyeball_polygons")
        for names, limit in ((vertex_ranges, self.n_vertices), (polygon_ranges, self.n_polygons)):
            for field in names:
                first, end = getattr(self, field)
                if not 0 <= first < end <= limit:
                    raise ValueError(f"{self.name}: {field} = {(first, end)} is not a range within 0..{limit}")
        if self.narrow_face_vertices[0] != self.face_vertices[0] or \
                self.narrow_face_vertices[1] > self.face_vertices[1]:
            raise ValueError(f"{self.name}: narrow_face_vertices must be a prefix of face_vertices")

    @property
    def parts(self) -> tuple[tuple[str, int, int, str, int | None], ...]:
        """The kept parts as :func:`build_topology` takes them: ``(name, first polygon, end,
        atlas region, simplify to this many triangles or None)``."""
        ranges = (self.face_polygons, self.head_neck_polygons, self.mouth_socket_polygons,
                  self.eye_socket_polygons, self.left_eyeball_polygons, self.right_eyeball_polygons)
        targets = (self.face_triangles, None, self.mouth_socket_triangles, None, None, None)
        return tuple((name, first, end, region, target)
                     for name, (first, end), region, target in zip(PART_NAMES, ranges, PART_REGIONS, targets))


#: ICT-FaceKit Light, as its README's geometry table gives it.
ICT_LIGHT = UpstreamLayout(
    name="ICT-FaceKit Light",
    n_vertices=26719,
    n_polygons=26384,
    face_vertices=(0, 9409),
    narrow_face_vertices=(0, 6706),
    head_neck_vertices=(9409, 11248),
    mouth_socket_vertices=(11248, 13294),
    eye_socket_vertices=(13294, 14062),
    left_eyeball_vertices=(21451, 22221),
    right_eyeball_vertices=(23021, 23791),
    face_polygons=(0, 9230),
    head_neck_polygons=(9230, 11144),
    mouth_socket_polygons=(11144, 13226),
    eye_socket_polygons=(13226, 14034),
    left_eyeball_polygons=(21496, 22296),
    right_eyeball_polygons=(23094, 23894),
    face_triangles=7500,
    mouth_socket_triangles=1800,
)

#: ICT-FaceKit Light's kept parts (:attr:`UpstreamLayout.parts` of :data:`ICT_LIGHT`).
PARTS = ICT_LIGHT.parts

#: Where each UV region goes in the packed atlas: (scale, u offset, v offset).
ATLAS = {"face": (0.64, 0.005, 0.355), "head": (0.34, 0.655, 0.655),
         "left_eye": (0.29, 0.005, 0.005), "right_eye": (0.29, 0.305, 0.005)}


@dataclass
class Topology:
    """The converted mesh as a function of ICT's.

    Attributes:
        corners: ``(V, 3)`` upstream vertex indices of each of our vertices.
        bary: ``(V, 3)`` their weights (``(1, 0, 0)`` for a vertex kept as it is).
        faces: ``(F, 3)`` our triangles; ft: ``(F, 3)`` their atlas uv indices; vt: ``(T, 2)``.
        face_part: ``(F,)`` each triangle's part, an index into :data:`PART_NAMES`.
    """

    corners: np.ndarray
    bary: np.ndarray
    faces: np.ndarray
    ft: np.ndarray
    vt: np.ndarray
    face_part: np.ndarray

    @property
    def origin(self) -> np.ndarray:
        """``(V,)`` the upstream vertex each of ours sits on or next to (its first corner)."""
        return self.corners[:, 0]

    def apply(self, upstream: np.ndarray) -> np.ndarray:
        """Map per-vertex upstream data ``(N_upstream, ...)`` to ours ``(V, ...)``."""
        weights = self.bary.reshape(self.bary.shape + (1,) * (upstream.ndim - 1))
        return (weights * upstream[self.corners]).sum(axis=1)

    def triangles_of(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.face_part == PART_NAMES.index(part))


def _atlas_uv(uv: np.ndarray, region: str) -> np.ndarray:
    scale, du, dv = ATLAS[region]
    return np.stack([du + scale * (uv[..., 0] - np.floor(uv[..., 0])), dv + scale * uv[..., 1]], axis=-1)


def _fan(polygons, first: int, end: int):
    """Triangles (upstream vertex and uv indices) of polygons ``first..end-1``."""
    tris, uvs = [], []
    for number in range(first, end):
        vertex_ids, uv_ids = polygons[number]
        for k in range(1, len(vertex_ids) - 1):  # quads split along their first diagonal
            tris.append([vertex_ids[0], vertex_ids[k], vertex_ids[k + 1]])
            uvs.append([uv_ids[0], uv_ids[k], uv_ids[k + 1]])
    return np.array(tris, dtype=np.int64), np.array(uvs, dtype=np.int64)


def closest_on_triangles(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
                         candidates: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the nearest point on the triangles (among those with the ``candidates``
    nearest centroids): its triangle row and barycentric coordinates (non-negative, sum 1)."""
    from scipy.spatial import cKDTree

    corners = vertices[triangles]  # (T, 3, 3)
    _, near = cKDTree(corners.mean(axis=1)).query(points, k=candidates)
    a, b, c = (corners[near, i] for i in range(3))  # (N, K, 3)
    p = points[:, None, :]
    # barycentrics of the projection onto each plane, then the best clamped candidate
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denom = np.where(np.abs(d00 * d11 - d01 * d01) < 1e-30, 1e-30, d00 * d11 - d01 * d01)
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    bary = np.stack([1.0 - w1 - w2, w1, w2], axis=-1).clip(0.0, None)
    bary /= bary.sum(-1, keepdims=True)
    closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    best = np.argmin(np.linalg.norm(closest - p, axis=-1), axis=1)
    rows = np.arange(len(points))
    return near[rows, best], bary[rows, best]


def _simplify(vertices: np.ndarray, triangles: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        import pyfqmr
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("converting ICT-FaceKit needs pyfqmr: pip install 'flamefit[convert]'") from None
    simplifier = pyfqmr.Simplify()
    simplifier.setMesh(vertices, triangles)
    simplifier.simplify_mesh(target_count=target, aggressiveness=7, preserve_border=True, verbose=False)
    new_vertices, new_triangles, _ = simplifier.getMesh()
    return np.asarray(new_vertices, dtype=np.float64), np.asarray(new_triangles, dtype=np.int64)


def build_topology(vertices: np.ndarray, uv: np.ndarray, polygons, layout: UpstreamLayout = ICT_LIGHT) -> Topology:
    """Triangles, atlas and linear map of the kept parts (``layout``'s) of the neutral ICT mesh
    (``vertices (N, 3)`` upstream, any unit; ``uv (T, 2)`` UDIM; ``polygons`` as read)."""
    sources: dict[tuple, int] = {}  # ("v", upstream) or ("new", part, i) -> our vertex
    corners, bary = [], []
    vt_keys: dict[tuple, int] = {}
    vt: list[np.ndarray] = []
    faces, ft, face_part = [], [], []

    def vertex(key, c, w) -> int:
        if key not in sources:
            sources[key] = len(corners)
            corners.append(c)
            bary.append(w)
        return sources[key]

    def uv_index(key, value) -> int:
        if key not in vt_keys:
            vt_keys[key] = len(vt)
            vt.append(value)
        return vt_keys[key]

    for part_index, (name, first, end, region, target) in enumerate(layout.parts):
        tris, tri_uvs = _fan(polygons, first, end)
        if target is None or target >= len(tris):
            for tri, tri_uv in zip(tris, tri_uvs):
                faces.append([vertex(("v", int(v)), [v, v, v], [1.0, 0.0, 0.0]) for v in tri])
                ft.append([uv_index((int(t), region), _atlas_uv(uv[t], region)) for t in tri_uv])
                face_part.append(part_index)
            continue
        local, inverse = np.unique(tris, return_inverse=True)
        local_tris = inverse.reshape(tris.shape)
        vertex_uv = np.zeros((len(local), 2))
        vertex_uv[local_tris.ravel()] = uv[tri_uvs.ravel()]  # seamless chart: one uv per vertex
        new_vertices, new_tris = _simplify(vertices[local], local_tris, target)
        # vertices the simplification left in place (its borders at least) stay ICT's own
        from scipy.spatial import cKDTree

        distance, nearest = cKDTree(vertices[local]).query(new_vertices)
        exact = distance < 1e-9
        rows, weights = closest_on_triangles(new_vertices, vertices[local], local_tris)
        ids = []
        for i in range(len(new_vertices)):
            if exact[i]:
                upstream = int(local[nearest[i]])
                ids.append((vertex(("v", upstream), [upstream] * 3, [1.0, 0.0, 0.0]),
                            _atlas_uv(vertex_uv[nearest[i]], region), ("v", upstream)))
            else:
                tri = local_tris[rows[i]]
                ids.append((vertex(("new", name, i), local[tri].tolist(), weights[i].tolist()),
                            _atlas_uv(weights[i] @ vertex_uv[tri], region), ("new", name, i)))
        for tri in new_tris:
            faces.append([ids[k][0] for k in tri])
            ft.append([uv_index((ids[k][2], region), ids[k][1]) for k in tri])
            face_part.append(part_index)
    return Topology(np.array(corners, dtype=np.int64), np.array(bary), np.array(faces, dtype=np.int64),
                    np.array(ft, dtype=np.int64), np.array(vt, dtype=np.float64), np.array(face_part))
