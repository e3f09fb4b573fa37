"""``flamefit convert-ict``: ICT-FaceKit Light in the FLAME formats.

Most tests convert a small checkout in ICT's upstream layout that :func:`write_checkout` writes
(a crude head: a face grid on the front of an ellipsoid, the back of the head and a neck tube, a
mouth-socket strip, two eye sockets and two eyeball spheres, plus two parts the converter leaves
out), described by a small :class:`UpstreamLayout`. One test, skipped unless
``FLAMEFIT_ICT_DIR`` names a real checkout, rebuilds the shipped model from it bit for bit;
another checks the shipped model itself.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from flamefit.flame.errors import ModelFileError
from flamefit.flame.ict_facekit import FILE_NAMES, N_IDENTITY, convert_ict, read_obj_vertices
from flamefit.flame.ict_topology import ICT_LIGHT, UpstreamLayout

pytest.importorskip("pyfqmr", reason="convert-ict simplifies the face with pyfqmr (pip install 'flamefit[convert]')")

LICENSE_TEXT = """MIT License

Copyright (c) 2020 USC Institute for Creative Technologies

Permission is hereby granted, free of charge, to any person obtaining a copy (synthetic test
checkout: this text only has to be copied verbatim).
"""
EXPRESSIONS = ["browInnerUp_L", "eyeBlink_L", "eyeBlink_R", "jawOpen", "mouthSmile_L", "mouthSmile_R"]
CENTRE = np.array([0.0, 1.0, 0.0])  # the head ellipsoid, cm (ICT's unit), y up, +z forward
RADII = np.array([8.0, 11.0, 10.0])
EYES = np.array([[3.1, 3.6, 7.7], [-3.1, 3.6, 7.7]])  # left (+x), right
EYE_RADIUS = 1.2
JAW_PIVOT = np.array([0.0, -0.5, 0.5])
JAW_ANGLE = 0.2  # radians about +x: the chin goes down and back


# -- the synthetic checkout ------------------------------------------------------------------
class _Mesh:
    """Upstream vertices, uvs and polygons (0-based ``(vertex ids, uv ids)``), grown part by part."""

    def __init__(self):
        self.vertices: list[np.ndarray] = []
        self.uv: list[np.ndarray] = []
        self.polygons: list[tuple[list[int], list[int]]] = []
        self.n_vertices = self.n_uv = 0

    def add(self, vertices: np.ndarray, uv: np.ndarray, polygons) -> tuple[tuple[int, int], tuple[int, int]]:
        """Append a part (local indices); returns its vertex and polygon ranges."""
        v0, t0, p0 = self.n_vertices, self.n_uv, len(self.polygons)
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.uv.append(np.asarray(uv, dtype=np.float64))
        self.polygons += [([v0 + i for i in vs], [t0 + i for i in ts]) for vs, ts in polygons]
        self.n_vertices += len(vertices)
        self.n_uv += len(uv)
        return (v0, self.n_vertices), (p0, len(self.polygons))


def _ellipsoid(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    """Points of the head ellipsoid; azimuth 0 faces +z, +90 degrees is +x (the subject's left)."""
    az, el = np.broadcast_arrays(az, el)
    return CENTRE + RADII * np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=-1)


def _grid_quads(rows: int, cols: int, index, uv_index=None):
    """Quads of a ``rows x cols`` vertex grid, outward for (column -> +azimuth, row -> up)."""
    uv_index = uv_index or index
    quads = []
    for i in range(rows - 1):
        for j in range(cols - 1):
            cell = [(i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j)]
            quads.append(([index(*c) for c in cell], [uv_index(*c) for c in cell]))
    return quads


def _face(rows=41, cols=37):
    """Face grid on the ellipsoid's front with a nose; narrow-face vertices first (ICT's order)."""
    az = np.deg2rad(np.linspace(-65.0, 65.0, cols))
    el = np.deg2rad(np.linspace(-62.0, 75.0, rows))
    points = _ellipsoid(az[None, :], el[:, None]).reshape(-1, 3)
    nose = np.exp(-0.5 * ((points[:, 0] / 1.3) ** 2 + ((points[:, 1] - 1.2) / 2.2) ** 2))
    points[:, 2] += 2.2 * nose
    narrow = (np.abs(az)[None, :] <= np.deg2rad(45.0)) & (np.abs(el - np.deg2rad(-5.0))[:, None] <= np.deg2rad(50.0))
    narrow = narrow.ravel()
    order = np.concatenate([np.flatnonzero(narrow), np.flatnonzero(~narrow)])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))  # grid index -> upstream (local) index
    uu, vv = np.meshgrid(np.linspace(0.02, 0.98, cols), np.linspace(0.02, 0.98, rows))
    uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
    index = lambda i, j: int(position[i * cols + j])  # noqa: E731
    interior = np.zeros((rows, cols), dtype=bool)
    interior[2:-2, 2:-2] = True
    return points[order], uv[order], _grid_quads(rows, cols, index), int(narrow.sum()), interior.ravel()[order]


def _landmark_targets() -> np.ndarray:
    """``(68, 2)`` x, y (cm) of the 68 points in the iBUG layout on this head."""
    a = np.linspace(0.0, np.pi, 17)
    jaw = np.stack([-6.5 * np.cos(a), 3.5 - 11.0 * np.sin(a)], axis=1)
    brow_x = np.array([-5.8, -4.9, -3.8, -2.4, -1.2])
    brow_y = np.array([5.2, 6.0, 6.3, 6.2, 5.9])
    brows = np.stack([np.concatenate([brow_x, -brow_x[::-1]]), np.concatenate([brow_y, brow_y[::-1]])], axis=1)
    bridge = np.stack([np.zeros(4), [3.7, 2.6, 1.6, 0.4]], axis=1)
    nostrils = np.stack([[-1.3, -0.6, 0.0, 0.6, 1.3], np.full(5, -1.1)], axis=1)
    t = np.pi - np.arange(6) * np.pi / 3  # corner, two upper lid points, corner, two lower
    eye_r = np.stack([-3.1 + 1.4 * np.cos(t), 3.6 + 0.5 * np.sin(t)], axis=1)  # from the outer corner
    eye_l = np.stack([3.1 + 1.4 * np.cos(t), 3.6 + 0.5 * np.sin(t)], axis=1)  # from the inner corner
    t = np.pi - np.arange(12) * np.pi / 6  # from the right corner over the upper lip
    outer = np.stack([2.5 * np.cos(t), -3.4 + 1.1 * np.sin(t)], axis=1)
    t = np.pi - np.arange(8) * np.pi / 4
    inner = np.stack([1.9 * np.cos(t), -3.4 + 0.45 * np.sin(t)], axis=1)
    return np.concatenate([jaw, brows, bridge, nostrils, eye_r, eye_l, outer, inner])


def _head_neck(rows=20, cols=24, neck_rows=10, neck_cols=24):
    """The back of the head (the ellipsoid behind the face, duplicated along the seam, as ICT's
    parts are) and a closed neck tube down to a cut."""
    az = np.deg2rad(np.linspace(65.0, 295.0, cols))
    el = np.deg2rad(np.linspace(-62.0, 75.0, rows))
    back = _ellipsoid(az[None, :], el[:, None]).reshape(-1, 3)
    uu, vv = np.meshgrid(np.linspace(1.03, 1.97, cols), np.linspace(0.32, 0.6, rows))
    back_uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
    quads = _grid_quads(rows, cols, lambda i, j: i * cols + j)

    y = np.linspace(-19.0, -6.0, neck_rows)
    ring = np.deg2rad(np.arange(neck_cols) * 360.0 / neck_cols)
    neck = np.stack([np.broadcast_to(5.0 * np.sin(ring), (neck_rows, neck_cols)),
                     np.broadcast_to(y[:, None], (neck_rows, neck_cols)),
                     np.broadcast_to(-1.0 + 5.0 * np.cos(ring), (neck_rows, neck_cols))], axis=-1).reshape(-1, 3)
    uu, vv = np.meshgrid(np.linspace(1.03, 1.97, neck_cols + 1), np.linspace(0.02, 0.28, neck_rows))
    neck_uv = np.stack([uu.ravel(), vv.ravel()], axis=1)  # the seam column has its own uvs
    v0, t0 = len(back), len(back_uv)
    quads += _grid_quads(neck_rows, neck_cols + 1, lambda i, j: v0 + i * neck_cols + j % neck_cols,
                         lambda i, j: t0 + i * (neck_cols + 1) + j)
    return np.vstack([back, neck]), np.vstack([back_uv, neck_uv]), quads


def _mouth_socket(rows=9, cols=13):
    """A half tube behind the lips (seamless uv chart: one uv per vertex)."""
    x = np.linspace(-2.4, 2.4, cols)
    psi = np.linspace(0.0, np.pi, rows)
    points = np.stack([np.broadcast_to(x[None, :], (rows, cols)),
                       np.broadcast_to(-3.4 + 1.0 * np.cos(psi)[:, None], (rows, cols)),
                       np.broadcast_to(8.5 - 2.5 * np.sin(psi)[:, None], (rows, cols))], axis=-1).reshape(-1, 3)
    uu, vv = np.meshgrid(np.linspace(1.04, 1.4, cols), np.linspace(0.66, 0.96, rows))
    uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
    return points, uv, _grid_quads(rows, cols, lambda i, j: i * cols + j)


def _eye_sockets(rows=4, cols=12):
    """A ring around each eyeball, left then right (closed rings: a uv seam)."""
    points, uvs, quads = [], [], []
    for centre, u0 in zip(EYES, (1.5, 1.75)):
        psi = np.deg2rad(np.arange(cols) * 360.0 / cols)
        beta = np.deg2rad(np.linspace(50.0, 110.0, rows))
        ring = centre + 1.45 * np.stack([np.sin(beta)[:, None] * np.cos(psi), np.sin(beta)[:, None] * np.sin(psi),
                                         np.broadcast_to(np.cos(beta)[:, None], (rows, cols))], axis=-1)
        uu, vv = np.meshgrid(np.linspace(u0, u0 + 0.22, cols + 1), np.linspace(0.66, 0.95, rows))
        v0, t0 = sum(map(len, points)), sum(map(len, uvs))
        quads += _grid_quads(rows, cols + 1, lambda i, j: v0 + i * cols + j % cols,
                             lambda i, j: t0 + i * (cols + 1) + j)
        points.append(ring.reshape(-1, 3))
        uvs.append(np.stack([uu.ravel(), vv.ravel()], axis=1))
    return np.vstack(points), np.vstack(uvs), quads


def _eyeball(centre: np.ndarray, rings=8, cols=12):
    """A sphere with its poles on z (the front pole at the cornea): triangle fans at the poles,
    quads between; uvs a disk around the front pole in UDIM tile 0 (as ICT's eyeballs)."""
    beta = np.pi * np.arange(1, rings + 1) / (rings + 1)
    phi = 2.0 * np.pi * np.arange(cols) / cols
    body = centre + EYE_RADIUS * np.stack([np.sin(beta)[:, None] * np.cos(phi), np.sin(beta)[:, None] * np.sin(phi),
                                           np.broadcast_to(np.cos(beta)[:, None], (rings, cols))], axis=-1)
    points = np.vstack([centre + [0, 0, EYE_RADIUS], body.reshape(-1, 3), centre - [0, 0, EYE_RADIUS]])
    radius = 0.45 * beta / np.pi
    uv = np.vstack([[0.5, 0.5], (0.5 + radius[:, None, None] * np.stack([np.cos(phi), np.sin(phi)], -1)).reshape(-1, 2),
                    0.5 + 0.45 * np.stack([np.cos(phi), np.sin(phi)], -1)])  # the back pole: one uv per triangle
    ring = lambda k, j: 1 + k * cols + j % cols  # noqa: E731
    back = len(points) - 1
    polygons = [([0, ring(0, j), ring(0, j + 1)], [0, ring(0, j), ring(0, j + 1)]) for j in range(cols)]
    for k in range(rings - 1):
        for j in range(cols):
            polygons.append(([ring(k, j), ring(k + 1, j), ring(k + 1, j + 1), ring(k, j + 1)],
                             [ring(k, j), ring(k + 1, j), ring(k + 1, j + 1), ring(k, j + 1)]))
    polygons += [([ring(rings - 1, j), back, ring(rings - 1, j + 1)],
                  [ring(rings - 1, j), 1 + rings * cols + j, ring(rings - 1, j + 1)]) for j in range(cols)]
    return points, uv, polygons


def _box(centre, size):
    """A small closed box (a part the converter leaves out: teeth, eyelashes)."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    sides = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    uv = 0.1 + 0.05 * corners[:, :2]
    return np.asarray(centre) + 0.5 * np.asarray(size) * corners, uv, [(s, s) for s in sides]


def _identity_displacement(points: np.ndarray, k: int) -> np.ndarray:
    """Identity ``k``: smooth waves over the head, at most 0.4 cm along each axis."""
    rng = np.random.default_rng(1000 + k)
    frequency = rng.normal(scale=0.15, size=(3, 3))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=3)
    amplitude = rng.uniform(0.1, 0.4, size=3)
    return amplitude * np.sin(points @ frequency + phase)


def _expression_displacement(points: np.ndarray, name: str, landmarks: np.ndarray, jaw_part: np.ndarray) -> np.ndarray:
    """A smooth local bump (or, for jawOpen, the jaw's rotation of the lower face and mouth)."""
    if name == "jawOpen":
        c, s = np.cos(JAW_ANGLE), np.sin(JAW_ANGLE)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        t = np.clip((-2.0 - points[:, 1]) / 3.0, 0.0, 1.0)
        weight = t * t * (3.0 - 2.0 * t) * jaw_part  # 1 below y = -5 cm, 0 above -2 cm
        rigid = (points - JAW_PIVOT) @ rotation.T + JAW_PIVOT - points
        return weight[:, None] * rigid
    centre, direction = {
        "browInnerUp_L": (landmarks[22], [0.0, 0.6, 0.0]),
        "eyeBlink_L": (landmarks[[43, 44]].mean(0), [0.0, -0.5, 0.1]),
        "eyeBlink_R": (landmarks[[37, 38]].mean(0), [0.0, -0.5, 0.1]),
        "mouthSmile_L": (landmarks[54], [0.4, 0.4, -0.2]),
        "mouthSmile_R": (landmarks[48], [-0.4, 0.4, -0.2]),
        "cheekRaiser_L": (landmarks[14], [0.0, 0.3, 0.2]),
    }[name]
    bump = np.exp(-0.5 * np.sum(((points - centre) / 1.5) ** 2, axis=1))
    return bump[:, None] * np.asarray(direction)


def _obj(path: Path, vertices: np.ndarray, tail: str = "") -> None:
    header = "# a synthetic checkout in ICT-FaceKit's layout (tests/flame/test_ict_facekit.py)\n" \
             "mtllib ICTFaceModelMaterial.mtl\n"
    path.write_text(header + "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices) + tail)


def write_checkout(root: Path) -> UpstreamLayout:
    """Write a small checkout in ICT-FaceKit's upstream layout into ``root``; return its layout."""
    mesh = _Mesh()
    face_v, face_uv, face_quads, n_narrow, interior = _face()
    face_vertices, face_polygons = mesh.add(face_v, face_uv, face_quads)
    head_neck_vertices, head_neck_polygons = mesh.add(*_head_neck())
    mouth_vertices, mouth_polygons = mesh.add(*_mouth_socket())
    socket_vertices, socket_polygons = mesh.add(*_eye_sockets())
    mesh.add(*_box([0.0, -3.2, 7.0], [3.0, 0.6, 1.5]))  # "teeth": left out
    left_vertices, left_polygons = mesh.add(*_eyeball(EYES[0]))
    right_vertices, right_polygons = mesh.add(*_eyeball(EYES[1]))
    mesh.add(*_box([0.0, 4.5, 9.0], [0.5, 0.1, 0.2]))  # "eyelashes": left out
    vertices, uv = np.vstack(mesh.vertices), np.vstack(mesh.uv)

    candidates = np.flatnonzero(interior)
    targets = _landmark_targets()
    landmark_vertices = [int(candidates[np.argmin(np.linalg.norm(face_v[candidates, :2] - p, axis=1))])
                         for p in targets]
    jaw_part = np.zeros(len(vertices))
    jaw_part[face_vertices[0]:face_vertices[1]] = 1.0
    jaw_part[mouth_vertices[0]:mouth_vertices[1]] = 1.0

    folder = root / "FaceXModel"
    folder.mkdir(parents=True)
    normals = (vertices - CENTRE) / np.linalg.norm(vertices - CENTRE, axis=1, keepdims=True)
    tail = "".join(f"vt {u:.6f} {v:.6f}\n" for u, v in uv)
    tail += "".join(f"vn {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in normals)
    tail += "g face\nusemtl face\n"
    tail += "".join("f " + " ".join(f"{v + 1}/{t + 1}/{v + 1}" for v, t in zip(vs, ts)) + "\n"
                    for vs, ts in mesh.polygons)
    _obj(folder / "generic_neutral_mesh.obj", vertices, tail)
    for k in range(N_IDENTITY):
        _obj(folder / f"identity{k:03d}.obj", vertices + _identity_displacement(vertices, k))
    landmarks = vertices[landmark_vertices]
    for name in EXPRESSIONS + ["cheekRaiser_L"]:  # an OBJ vertex_indices.json does not name
        _obj(folder / f"{name}.obj", vertices + _expression_displacement(vertices, name, landmarks, jaw_part))
    (folder / "vertex_indices.json").write_text(json.dumps({
        "expressions": EXPRESSIONS, "fitting_expressions": EXPRESSIONS, "incompatibilities": [],
        "idx_to_landmark_verts": landmark_vertices}, indent=1))
    (root / "LICENSE").write_text(LICENSE_TEXT)
    (root / "README.md").write_text("# synthetic ICT-FaceKit checkout\n")

    n_face_tris = 2 * (face_polygons[1] - face_polygons[0])
    n_mouth_tris = 2 * (mouth_polygons[1] - mouth_polygons[0])
    return UpstreamLayout(
        name="the synthetic ICT layout",
        n_vertices=len(vertices),
        n_polygons=len(mesh.polygons),
        face_vertices=face_vertices,
        narrow_face_vertices=(0, n_narrow),
        head_neck_vertices=head_neck_vertices,
        mouth_socket_vertices=mouth_vertices,
        eye_socket_vertices=socket_vertices,
        left_eyeball_vertices=left_vertices,
        right_eyeball_vertices=right_vertices,
        face_polygons=face_polygons,
        head_neck_polygons=head_neck_polygons,
        mouth_socket_polygons=mouth_polygons,
        eye_socket_polygons=socket_polygons,
        left_eyeball_polygons=left_polygons,
        right_eyeball_polygons=right_polygons,
        face_triangles=n_face_tris // 2,
        mouth_socket_triangles=n_mouth_tris // 2,
    )


def _linked_copy(root: Path, dest: Path, skip: tuple[str, ...] = ()) -> Path:
    """``dest``: the checkout ``root`` by symbolic links, without the files named in ``skip``
    (relative paths; ``FaceXModel`` drops the whole folder)."""
    dest.mkdir(parents=True)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and str(relative) not in skip and relative.parts[0] not in skip:
            (dest / relative).parent.mkdir(exist_ok=True)
            (dest / relative).symlink_to(path)
    return dest


def _at_our_vertices(upstream_cm: np.ndarray, model) -> np.ndarray:
    """Upstream positions (cm) mapped to our vertices (m) by the model's own linear map."""
    corners, bary = model.extras["upstream_corners"], model.extras["upstream_bary"].astype(np.float64)
    return (bary[:, :, None] * upstream_cm[corners]).sum(axis=1) * 0.01


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """``(root, layout)`` of the synthetic upstream checkout."""
    root = tmp_path_factory.mktemp("ict_checkout")
    return root, write_checkout(root)


@pytest.fixture(scope="module")
def converted(checkout, tmp_path_factory):
    root, layout = checkout
    return convert_ict(root, tmp_path_factory.mktemp("ict_converted") / "model", layout=layout)


# -- the layout ------------------------------------------------------------------------------
def test_ict_light_layout_is_ict_readme_table():
    assert (ICT_LIGHT.n_vertices, ICT_LIGHT.n_polygons) == (26719, 26384)
    assert ICT_LIGHT.face_vertices == (0, 9409) and ICT_LIGHT.narrow_face_vertices == (0, 6706)
    # the outer eyeballs (README's "Sclera" rows); the inner iris spheres are left out
    assert ICT_LIGHT.left_eyeball_vertices == (21451, 22221) and ICT_LIGHT.right_eyeball_vertices == (23021, 23791)
    assert ICT_LIGHT.parts == (
        ("face", 0, 9230, "face", 7500),
        ("head_neck", 9230, 11144, "head", None),
        ("mouth_socket", 11144, 13226, "head", 1800),
        ("eye_sockets", 13226, 14034, "head", None),
        ("left_eyeball", 21496, 22296, "left_eye", None),
        ("right_eyeball", 23094, 23894, "right_eye", None),
    )
    with pytest.raises(ValueError, match="head_neck_vertices"):
        UpstreamLayout(**{**ICT_LIGHT.__dict__, "head_neck_vertices": (9409, 30000)})


# -- converting the synthetic checkout -------------------------------------------------------
def test_converting_twice_gives_identical_files(checkout, converted, tmp_path):
    root, layout = checkout
    again = convert_ict(root, tmp_path / "again", layout=layout)
    assert sorted(p.name for p in converted.iterdir()) == sorted(FILE_NAMES)
    for name in FILE_NAMES:
        assert (again / name).read_bytes() == (converted / name).read_bytes(), name


def test_output_loads_with_every_reader(checkout, converted):
    from flamefit.flame.flame_layer import FLAME
    from flamefit.flame.landmark_embedding import load_landmark_embedding
    from flamefit.flame.model_file import load_flame_model
    from flamefit.flame.texture_space_io import load_texture_space
    from flamefit.flame.uv_template import load_uv_template
    from flamefit.flame.vertex_masks import load_vertex_masks

    model = load_flame_model(converted / "generic_model.npz")
    assert (model.n_shape, model.n_expression) == (N_IDENTITY, len(EXPRESSIONS))
    assert [str(n) for n in model.extras["expression_names"]] == EXPRESSIONS
    embedding = load_landmark_embedding(converted / "landmark_embedding.npy", n_faces=model.n_faces)
    template = load_uv_template(converted / "head_template_mesh.obj", n_vertices=len(model.v_template),
                                faces=model.faces)
    masks = load_vertex_masks(converted / "FLAME_masks.pkl", n_vertices=len(model.v_template))
    texture = load_texture_space(converted / "FLAME_texture.npz")
    assert np.array_equal(texture.ft, template.ft) and np.allclose(texture.vt, template.vt, atol=1e-6)
    assert embedding.dynamic_faces.shape == (79, 17)
    for name in ("face", "left_eyeball", "right_eyeball", "lips", "nose", "scalp", "neck", "mouth_socket"):
        assert masks[name].size, name

    layer = FLAME.from_files(converted / "generic_model.npz", converted / "landmark_embedding.npy")
    output = layer()
    assert output.landmarks.shape == (1, 68, 3) and np.isfinite(output.landmarks.numpy()).all()
    chin, left_jaw, right_jaw = output.landmarks[0, [8, 16, 0]].numpy()
    assert chin[1] < -0.06 and left_jaw[0] > 0.05 and right_jaw[0] < -0.05  # metres, FLAME's axes


def test_layer_reproduces_the_upstream_shapes(checkout, converted):
    import torch

    from flamefit.flame.flame_layer import FLAME
    from flamefit.flame.model_file import load_flame_model

    root, layout = checkout
    model = load_flame_model(converted / "generic_model.npz")
    assert (model.extras["upstream_bary"][:, 0] < 1.0).any()  # the face was simplified: a real map
    layer = FLAME.from_files(converted / "generic_model.npz")
    neutral = read_obj_vertices(root / "FaceXModel" / "generic_neutral_mesh.obj", layout)
    assert np.abs(layer().vertices[0].numpy() - _at_our_vertices(neutral, model)).max() < 1e-5
    for k in (0, 57, N_IDENTITY - 1):
        shape = torch.zeros(1, N_IDENTITY)
        shape[0, k] = 1.0
        expected = _at_our_vertices(read_obj_vertices(root / "FaceXModel" / f"identity{k:03d}.obj", layout), model)
        assert np.abs(layer(shape=shape).vertices[0].numpy() - expected).max() < 1e-5, k  # 0.01 mm
    expression = torch.zeros(1, len(EXPRESSIONS))
    expression[0, EXPRESSIONS.index("jawOpen")] = 1.0
    expected = _at_our_vertices(read_obj_vertices(root / "FaceXModel" / "jawOpen.obj", layout), model)
    opened = layer(expression=expression).vertices[0].numpy()
    assert np.abs(opened - expected).max() < 1e-5
    assert np.abs(opened - layer().vertices[0].numpy()).max() > 0.01  # the jaw did open (> 1 cm)


def test_rig_finds_the_jaw_and_the_eyes(converted):
    model = np.load(converted / "generic_model.npz")
    joints = model["J"].astype(np.float64)
    assert np.allclose(joints[3:], EYES * 0.01, atol=1e-4)  # sphere centres, within 0.1 mm
    assert np.allclose(joints[2], JAW_PIVOT * 0.01, atol=0.005)  # the jaw's axis, within 5 mm
    assert joints[0, 1] < joints[1, 1] < joints[2, 1]  # root below the neck below the jaw


def test_licence_is_copied_verbatim(checkout, converted):
    root, _ = checkout
    assert (converted / "LICENSE.ICT-FaceKit.txt").read_bytes() == (root / "LICENSE").read_bytes()


@pytest.mark.parametrize("broken, named", [
    ("no FaceXModel", ""),
    ("no LICENSE", "LICENSE"),
    ("truncated neutral", "FaceXModel/generic_neutral_mesh.obj"),
    ("truncated identity", "FaceXModel/identity007.obj"),
])
def test_a_broken_checkout_names_the_file(checkout, tmp_path, broken, named):
    root, layout = checkout
    skip = {"no FaceXModel": ("FaceXModel",), "no LICENSE": ("LICENSE",)}.get(broken, (named,))
    copy = _linked_copy(root, tmp_path / "ict", skip)
    if broken.startswith("truncated"):
        lines = (root / named).read_text().splitlines(keepends=True)
        (copy / named).write_text("".join(lines[: layout.n_vertices // 2]))  # cut among the v lines
    with pytest.raises(ModelFileError) as raised:
        convert_ict(copy, tmp_path / "out", layout=layout)
    assert raised.value.path == copy / named
    assert str(copy / named) in str(raised.value)
    if broken == "no FaceXModel":
        assert "FaceXModel" in raised.value.problem
    if broken.startswith("truncated"):
        assert f"{layout.n_vertices}" in raised.value.problem and "vertices" in raised.value.problem
    assert not (tmp_path / "out").exists()  # nothing written


def test_another_layout_is_refused_with_the_file_named(checkout, tmp_path):
    root, _ = checkout
    with pytest.raises(ModelFileError, match="ICT-FaceKit Light has 26719") as raised:
        convert_ict(root, tmp_path / "out")  # ICT-FaceKit Light's layout, the default
    assert raised.value.path == root / "FaceXModel" / "generic_neutral_mesh.obj"


def test_cli_refuses_to_overwrite_a_converted_folder(checkout, converted, capsys):
    from flamefit.cli import main

    root, _ = checkout
    before = {name: (converted / name).read_bytes() for name in FILE_NAMES}
    assert main(["convert-ict", str(root), "--out", str(converted)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {name: (converted / name).read_bytes() for name in FILE_NAMES} == before


# -- the real checkout and the shipped model -------------------------------------------------
_ICT_DIR = os.environ.get("FLAMEFIT_ICT_DIR")


@pytest.mark.slow  # reads 153 OBJs of 2.5 MB
@pytest.mark.skipif(not (_ICT_DIR and (Path(_ICT_DIR) / "FaceXModel").is_dir()),
                    reason="set FLAMEFIT_ICT_DIR to an ICT-FaceKit checkout (github.com/ICT-VGL/ICT-FaceKit) "
                           "to rebuild the shipped model from it")
def test_real_checkout_rebuilds_the_shipped_model_bit_for_bit(tmp_path):
    from flamefit.flame.selection import OPEN_MODEL_DIR

    out = convert_ict(_ICT_DIR, tmp_path / "open_model")
    differing = [name for name in FILE_NAMES if (out / name).read_bytes() != (OPEN_MODEL_DIR / name).read_bytes()]
    assert not differing, f"{differing} differ from {OPEN_MODEL_DIR}"


def test_shipped_model_files():
    from flamefit.flame.landmark_embedding import load_landmark_embedding
    from flamefit.flame.selection import OPEN_MODEL_DIR
    from flamefit.flame.vertex_masks import load_vertex_masks

    assert sorted(p.name for p in OPEN_MODEL_DIR.iterdir()) == sorted(FILE_NAMES)
    assert sum((OPEN_MODEL_DIR / name).stat().st_size for name in FILE_NAMES) < 20 * 2**20
    licence = (OPEN_MODEL_DIR / "LICENSE.ICT-FaceKit.txt").read_text()
    assert "Copyright (c) 2020 USC Institute for Creative Technologies" in licence
    assert "Permission is hereby granted" in licence
    assert "LICENSE.ICT-FaceKit.txt" in (OPEN_MODEL_DIR / "README.txt").read_text()

    with np.load(OPEN_MODEL_DIR / "generic_model.npz", allow_pickle=False) as npz:
        model = {name: npz[name] for name in npz.files}
    n_vertices, n_faces = len(model["v_template"]), len(model["f"])
    names = [str(n) for n in model["expression_names"]]
    # identity columns in float16, expression columns in float32 (ict_facekit.build_from_upstream)
    assert model["shapedirs"].dtype == np.float16 and model["shapedirs"].shape == (n_vertices, 3, N_IDENTITY)
    assert model["exprdirs"].dtype == np.float32 and model["exprdirs"].shape == (n_vertices, 3, len(names))
    assert (int(model["n_shape"]), int(model["n_expression"])) == (N_IDENTITY, len(names)) and len(names) == 53
    assert "jawOpen" in names
    assert model["f"].max() < n_vertices
    assert 0 <= model["upstream_corners"].min() and model["upstream_corners"].max() < ICT_LIGHT.n_vertices

    with open(OPEN_MODEL_DIR / "FLAME_masks.pkl", "rb") as stream:
        raw_masks = pickle.load(stream)
    masks = load_vertex_masks(OPEN_MODEL_DIR / "FLAME_masks.pkl", n_vertices=n_vertices)
    assert set(masks) == set(raw_masks)
    for name, ids in masks.items():
        assert ids.size and 0 <= ids.min() and ids.max() < n_vertices, name
    embedding = load_landmark_embedding(OPEN_MODEL_DIR / "landmark_embedding.npy", n_faces=n_faces)
    for name in ("static_faces", "dynamic_faces", "full_faces"):
        faces = getattr(embedding, name)
        assert faces.size and 0 <= faces.min() and faces.max() < n_faces, name
    for name in ("static_bary", "dynamic_bary", "full_bary"):
        bary = getattr(embedding, name)
        assert (bary >= 0).all() and np.allclose(bary.sum(-1), 1.0, atol=1e-5), name
