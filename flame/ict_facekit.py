"""``flamefit convert-ict``: ICT-FaceKit Light (USC ICT, MIT) converted into the FLAME formats.

Reads an upstream checkout exactly as distributed (``FaceXModel/generic_neutral_mesh.obj``,
``identity000.obj`` .. ``identity099.obj``, the 53 expression OBJs named in
``FaceXModel/vertex_indices.json``, that file's 68 landmark vertices, and ``LICENSE``) and writes
a folder that every FLAME code path loads unchanged:

* ``generic_model.npz`` — the model (:func:`flamefit.flame.model_file.load_flame_model`):
  ``v_template`` in metres in FLAME's axes (ICT's are FLAME's: y up, +z toward the viewer, x to
  the subject's left; ICT is in centimetres); triangles (ICT's quads split along their first
  diagonal); ``shapedirs`` = the 100 identity modes (``identityNNN.obj`` minus the neutral, as
  ICT's own code computes them; ICT's sampler draws their weights from a standard normal, so
  unit-variance coefficients give plausible people as they are) followed by the 53 expression
  shapes, kept as they are, in ``vertex_indices.json``'s ARKit order (``expression_names``);
  joints global, neck, jaw, left eye, right eye with a joint regressor and skinning weights
  derived from the geometry (see :func:`rig`); no pose correctives (zero ``posedirs``).
* ``landmark_embedding.npy`` — DECA's layout: 51 static points on ICT's landmark vertices
  17..67, and the 79 x 17 yaw-dependent contour from slices of the face through ICT's
  contour vertices 0..16 (:func:`flamefit.flame.landmark_contour.contour_table`).
* ``head_template_mesh.obj`` — the UV template, ICT's UDIM tiles packed into one atlas.
* ``FLAME_masks.pkl`` — region masks from ICT's documented vertex ranges and its landmarks.
* ``FLAME_texture.npz`` — a generated albedo model in that atlas (:mod:`flamefit.flame.ict_albedo`),
  labelled as generated (ICT has none).
* ``LICENSE.ICT-FaceKit.txt`` — ICT's MIT notice, verbatim, as its licence requires.

Kept geometry (:mod:`flamefit.flame.ict_topology`): face, head and neck, mouth socket, both eye
sockets and eyeballs (ICT's polygons 0..14033 and 21496..24691), the face and mouth socket
simplified by a fixed linear map applied to every mode alike; teeth, gums and tongue, lacrimal
fluid, eye blend and occlusion meshes and eyelashes are left out (thin or hidden, they would
only cost render time). ``upstream_corners``/``upstream_bary`` in the model file record the
map. Everything written is a deterministic function of the upstream files, so the shipped
folder is rebuilt bit for bit.

ICT-FaceKit Light's sizes and index ranges (its README's geometry table) are held in one
:class:`~flamefit.flame.ict_topology.UpstreamLayout`, :data:`~flamefit.flame.ict_topology.ICT_LIGHT`,
the default of every function here that needs them (``layout=``); the tests convert a small
checkout of the same layout with smaller ranges.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flamefit.flame.errors import ModelFileError
from flamefit.flame.ict_topology import ICT_LIGHT, UpstreamLayout
from flamefit.flame.landmark_contour import contour_table
from flamefit.utils import atomic_write, write_npz, write_text

MODEL_NAME = "ICT-FaceKit Light (MIT), converted by flamefit"
N_IDENTITY = 100
CM_TO_M = 0.01

FILE_NAMES = ("generic_model.npz", "landmark_embedding.npy", "head_template_mesh.obj",
              "FLAME_masks.pkl", "FLAME_texture.npz", "LICENSE.ICT-FaceKit.txt", "README.txt")


@dataclass
class UpstreamMesh:
    """The neutral mesh of an ICT checkout: ``vertices (V, 3)`` cm, ``uv (T, 2)`` (UDIM),
    ``polygons`` as a list of ``(vertex indices, uv indices)`` pairs (0-based)."""

    vertices: np.ndarray
    uv: np.ndarray
    polygons: list[tuple[list[int], list[int]]]


def _obj_lines(path: Path, tag: bytes) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelFileError(path, f"cannot read it ({error.strerror or error}); is this an ICT-FaceKit checkout?") from None
    return [line for line in data.splitlines() if line.startswith(tag)]


def read_obj_vertices(path: Path, layout: UpstreamLayout = ICT_LIGHT) -> np.ndarray:
    """``(V, 3)`` float64 ``v`` positions of an OBJ (extra columns, such as colours, ignored);
    ``V`` must be ``layout``'s vertex count."""
    lines = _obj_lines(path, b"v ")
    try:
        values = np.array([line.split()[1:4] for line in lines], dtype=np.float64)
    except ValueError as error:
        raise ModelFileError(path, f"has an unreadable vertex line ({error})") from None
    if values.shape != (layout.n_vertices, 3):
        raise ModelFileError(path, f"has {len(values)} vertices, {layout.name} has {layout.n_vertices}; "
                                   "use an unmodified checkout")
    return values


def read_upstream_mesh(path: Path, layout: UpstreamLayout = ICT_LIGHT) -> UpstreamMesh:
    """The neutral OBJ with its UVs and polygons (as many as ``layout`` says)."""
    vertices = read_obj_vertices(path, layout)
    uv = np.array([line.split()[1:3] for line in _obj_lines(path, b"vt ")], dtype=np.float64)
    polygons = []
    for line in _obj_lines(path, b"f "):
        corners = [token.split(b"/") for token in line.split()[1:]]
        polygons.append(([int(c[0]) - 1 for c in corners], [int(c[1]) - 1 for c in corners]))
    if len(polygons) != layout.n_polygons:
        raise ModelFileError(path, f"has {len(polygons)} polygons, {layout.name} has {layout.n_polygons}")
    return UpstreamMesh(vertices, uv, polygons)


def _within(origin: np.ndarray, *ranges) -> np.ndarray:
    """Our vertices (indices) whose upstream origin lies in any of ``ranges``."""
    inside = np.zeros(len(origin), dtype=bool)
    for first, end in ranges:
        inside |= (origin >= first) & (origin < end)
    return np.flatnonzero(inside)


# -- joints and skinning -----------------------------------------------------------------------
def regressor_row(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights ``w (K,)`` with ``w @ points == target`` and ``sum(w) == 1``, closest to uniform:
    a joint regressor row that reproduces ``target`` on this mesh and follows its vertices."""
    k = len(points)
    a = np.vstack([points.T, np.ones((1, k))])  # (4, K)
    b = np.append(target, 1.0)
    uniform = np.full(k, 1.0 / k)
    return uniform + a.T @ np.linalg.solve(a @ a.T, b - a @ uniform)


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares centre of a sphere through ``points (N, 3)``."""
    a = np.hstack([2.0 * points, np.ones((len(points), 1))])
    solution, *_ = np.linalg.lstsq(a, (points**2).sum(axis=1), rcond=None)
    return solution[:3]


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` and translation ``t`` minimising ``|R @ source + t - target|`` (Kabsch)."""
    cs, ct = source.mean(axis=0), target.mean(axis=0)
    u, _, vh = np.linalg.svd((source - cs).T @ (target - ct))
    d = np.sign(np.linalg.det(vh.T @ u.T))
    rotation = vh.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, ct - rotation @ cs


def jaw_pivot(neutral: np.ndarray, jaw_open: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The jaw's rotation from ``jawOpen``: the rigid motion of the vertices it moves most, and
    the point of its axis on the midline (x = 0).

    Returns:
        ``pivot (3,)``, ``R (3, 3)``, ``t (3,)`` (the rigid motion, model space).
    """
    moved = np.linalg.norm(jaw_open[candidates] - neutral[candidates], axis=1)
    # jawOpen also stretches the skin: only the chin, which the bone carries, moves rigidly
    # (residual ~2 mm over these against ~6 mm over the half that moves most).
    chosen = candidates[moved > 0.85 * moved.max()]
    rotation, translation = rigid_fit(neutral[chosen], jaw_open[chosen])
    w, v = np.linalg.eig(rotation)
    axis = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    point, *_ = np.linalg.lstsq(np.eye(3) - rotation, translation, rcond=None)
    point = point - axis * point[0] / axis[0]  # slide along the axis to the midline
    return point, rotation, translation


@dataclass
class Rig:
    """Joints (global, neck, jaw, left eye, right eye), ``j_regressor (5, V)``, ``weights (V, 5)``."""

    joints: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray


def rig(neutral: np.ndarray, jaw_open: np.ndarray, landmarks: np.ndarray, origin: np.ndarray,
        layout: UpstreamLayout = ICT_LIGHT) -> Rig:
    """Joints and skinning weights of the kept mesh (metres, kept vertex order).

    * eyes: the centres of spheres fitted to each eyeball; its vertices follow it rigidly;
    * jaw: the axis of the rigid motion that ``jawOpen`` applies to the lower face, at the
      midline; jaw weights are each vertex's share of that motion (its ``jawOpen`` displacement
      projected on the rigid one, clipped to [0, 1]) below the nose;
    * global: the centre of the neck's cut; neck: the neck's centre at chin height. Vertices
      below the neck joint blend from neck to global down to the cut.
    Each regressor row reproduces its joint exactly on the neutral mesh from nearby vertices.
    ``origin``: each vertex's upstream vertex (:attr:`~flamefit.flame.ict_topology.Topology.origin`),
    whose part ``layout``'s ranges tell.
    """
    n = len(neutral)
    left_eye = _within(origin, layout.left_eyeball_vertices)
    right_eye = _within(origin, layout.right_eyeball_vertices)
    face = _within(origin, layout.face_vertices, layout.mouth_socket_vertices)
    head_neck = _within(origin, layout.head_neck_vertices)
    y = neutral[:, 1]

    eye_l, eye_r = sphere_centre(neutral[left_eye]), sphere_centre(neutral[right_eye])
    pivot, rotation, translation = jaw_pivot(neutral, jaw_open, face)
    bottom = head_neck[y[head_neck] < y[head_neck].min() + 0.03]  # the (slanted) neck cut
    root = np.array([0.0, neutral[bottom, 1].mean(), 0.5 * (neutral[bottom, 2].min() + neutral[bottom, 2].max())])
    chin_y = landmarks[8, 1]
    band = head_neck[np.abs(y[head_neck] - chin_y) < 0.01]
    neck = neutral[band].mean(axis=0)
    root[0] = neck[0] = 0.0
    joints = np.stack([root, neck, pivot, eye_l, eye_r])

    skin = np.setdiff1d(np.arange(n), np.concatenate([left_eye, right_eye]))
    near_jaw = skin[np.linalg.norm(neutral[skin] - pivot, axis=1) < 0.07]
    near_neck = skin[np.linalg.norm(neutral[skin] - neck, axis=1) < 0.08]
    regressor = np.zeros((5, n))
    for row, (ids, target) in enumerate([(bottom, root), (near_neck, neck), (near_jaw, pivot),
                                         (left_eye, eye_l), (right_eye, eye_r)]):
        regressor[row, ids] = regressor_row(neutral[ids], target)

    weights = np.zeros((n, 5))
    weights[left_eye, 3] = 1.0
    weights[right_eye, 4] = 1.0
    rigid = neutral[face] @ rotation.T + translation - neutral[face]
    moved = jaw_open[face] - neutral[face]
    share = (moved * rigid).sum(axis=1) / np.maximum((rigid * rigid).sum(axis=1), 1e-12)
    below_nose = y[face] < landmarks[33, 1]
    weights[face, 2] = np.clip(share, 0.0, 1.0) * below_nose
    rest = 1.0 - weights[:, 2:].sum(axis=1)
    blend = np.clip((y - root[1]) / max(neck[1] - root[1], 1e-6), 0.0, 1.0)
    blend = blend * blend * (3.0 - 2.0 * blend)  # smoothstep
    weights[:, 1] = rest * blend
    weights[:, 0] = rest * (1.0 - blend)
    return Rig(joints, regressor, weights)


# -- landmarks and masks -----------------------------------------------------------------------
def _evenly_spaced(contour: np.ndarray) -> np.ndarray:
    """``(17, 2)`` points along the polyline through ``contour (17, 2)``, spaced evenly by arc
    length from point 0 to the chin (8) and from the chin to point 16, as the iBUG annotation
    spaces them (ICT's own 68-point list spaces its jaw points unevenly: its points 5 and 11 sat
    ~0.6 cm along the jaw from where dlib puts them, the largest errors of real-photo fits)."""
    out = contour.copy()
    for first, last in ((0, 8), (8, 16)):
        part = contour[first:last + 1]
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(part, axis=0), axis=1))])
        wanted = np.linspace(0.0, arc[-1], len(part))
        out[first:last + 1] = np.stack([np.interp(wanted, arc, part[:, k]) for k in range(2)], axis=1)
    return out


def landmark_embedding(neutral: np.ndarray, faces: np.ndarray, landmarks: np.ndarray,
                       face_triangles: np.ndarray) -> dict[str, np.ndarray]:
    """DECA's embedding arrays: static points 17..67 at the points of the face triangles
    nearest to ICT's landmark vertices; the contour table from the frontal points 0..16.

    Args:
        neutral: ``(V, 3)``; faces: ``(F, 3)``; landmarks: ``(68, 3)`` ICT's landmark vertices'
        positions; face_triangles: rows of ``faces`` on the face.
    """
    from flamefit.flame.ict_topology import closest_on_triangles

    rows, static_b = closest_on_triangles(landmarks[17:], neutral, faces[face_triangles])
    static_f = face_triangles[rows]
    jaw_xy = _evenly_spaced(landmarks[:17, :2])
    jaw_xy[8, 0] = 0.0  # the chin is on the midline
    dyn_f, dyn_b = contour_table(jaw_xy, neutral, faces[face_triangles])
    dyn_f = face_triangles[dyn_f]
    return {
        "static_lmk_faces_idx": static_f.astype(np.int64),
        "static_lmk_bary_coords": static_b.astype(np.float32),
        "dynamic_lmk_faces_idx": dyn_f.astype(np.int64),
        "dynamic_lmk_bary_coords": dyn_b.astype(np.float32),
        "full_lmk_faces_idx": np.concatenate([dyn_f[0], static_f])[None].astype(np.int64),
        "full_lmk_bary_coords": np.concatenate([dyn_b[0], static_b])[None].astype(np.float32),
    }


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of ``points (N, 2)`` against a closed ``polygon (K, 2)``."""
    inside = np.zeros(len(points), dtype=bool)
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        at = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0)
        inside ^= crosses & (x < at)
    return inside


def _grown(polygon: np.ndarray, margin: float) -> np.ndarray:
    centre = polygon.mean(axis=0)
    offset = polygon - centre
    return centre + offset * (1.0 + margin / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-9))


def vertex_masks(neutral: np.ndarray, landmarks: np.ndarray, origin: np.ndarray,
                 layout: UpstreamLayout = ICT_LIGHT) -> dict[str, np.ndarray]:
    """Region name -> our vertex indices (FLAME_masks.pkl's names)."""
    idx = lambda *ranges: _within(origin, *ranges)  # noqa: E731
    face_all, narrow = idx(layout.face_vertices), idx(layout.narrow_face_vertices)
    head_neck = idx(layout.head_neck_vertices)
    x, y, z = neutral.T
    brow_y = landmarks[17:27, 1].max()
    chin_y = landmarks[8, 1]
    front = face_all[z[face_all] > landmarks[0, 2] - 0.01]

    def within(ids, polygon, depth):
        return ids[_inside_polygon(neutral[ids, :2], polygon) & (z[ids] > depth)]

    eyes = np.concatenate([landmarks[36:42], landmarks[42:48]])
    eye_dist = np.minimum(np.linalg.norm(neutral[:, :2] - landmarks[36:42, :2].mean(0), axis=1),
                          np.linalg.norm(neutral[:, :2] - landmarks[42:48, :2].mean(0), axis=1))
    nose_outline = landmarks[[27, 31, 32, 33, 34, 35]]
    nose_outline = np.vstack([nose_outline[:1] + [-0.012, 0, 0], nose_outline[:1] + [0.012, 0, 0], nose_outline[1:][::-1]])
    return {
        "face": narrow,
        "left_eyeball": idx(layout.left_eyeball_vertices),
        "right_eyeball": idx(layout.right_eyeball_vertices),
        "eye_region": front[(eye_dist[front] < 0.022) & (z[front] > eyes[:, 2].min() - 0.012)],
        "lips": within(front, _grown(landmarks[48:60, :2], 0.003), landmarks[48:60, 2].min() - 0.015),
        "nose": within(front, _grown(nose_outline[:, :2], 0.004), landmarks[31:36, 2].min() - 0.012),
        "forehead": front[(y[front] > brow_y + 0.006)],
        "scalp": head_neck[(y[head_neck] > brow_y) | ((z[head_neck] < -0.02) & (y[head_neck] > chin_y))],
        "neck": head_neck[y[head_neck] < chin_y - 0.01],
        "boundary": head_neck[y[head_neck] < y[head_neck].min() + 0.004],
        "mouth_socket": idx(layout.mouth_socket_vertices),
        "eye_sockets": idx(layout.eye_socket_vertices),
    }


# -- the whole conversion ----------------------------------------------------------------------
@dataclass
class ConvertedModel:
    """Everything :func:`convert_ict` writes, as arrays."""

    model: dict[str, np.ndarray]
    landmarks: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    vt: np.ndarray
    ft: np.ndarray
    albedo_mean: np.ndarray
    albedo_basis: np.ndarray
    albedo_names: tuple[str, ...]
    licence: str


def build_from_upstream(folder: str | Path, show_progress: bool = False,
                        layout: UpstreamLayout = ICT_LIGHT) -> ConvertedModel:
    """Read an ICT-FaceKit checkout and build every array of the converted model.

    Args:
        folder: the checkout's root (``FaceXModel/``, ``LICENSE``).
        show_progress: a progress bar over the shape OBJs.
        layout: the sizes and ranges of its neutral mesh (ICT-FaceKit Light's by default).

    Raises:
        ModelFileError: a file is missing or is not ICT-FaceKit Light's (named, with what to do).
    """
    from flamefit.flame.ict_albedo import COMPONENT_NAMES, albedo_model
    from flamefit.flame.ict_topology import build_topology

    folder = Path(folder)
    model_dir = folder / "FaceXModel"
    if not model_dir.is_dir():
        raise ModelFileError(folder, "has no FaceXModel/ folder; give the root of an ICT-FaceKit checkout "
                                     "(github.com/ICT-VGL/ICT-FaceKit)")
    try:
        config = json.loads((model_dir / "vertex_indices.json").read_text())
        expression_names = [str(name) for name in config["expressions"]]
        landmark_vertices = np.array(config["idx_to_landmark_verts"], dtype=np.int64)
    except (OSError, ValueError, KeyError) as error:
        raise ModelFileError(model_dir / "vertex_indices.json", f"cannot read the expression names and "
                                                                f"landmarks ({error})") from None
    first, end = layout.face_vertices
    if len(landmark_vertices) != 68 or landmark_vertices.min() < first or landmark_vertices.max() >= end:
        raise ModelFileError(model_dir / "vertex_indices.json", "idx_to_landmark_verts must be 68 face vertices")
    try:
        licence = (folder / "LICENSE").read_text()
    except OSError:
        raise ModelFileError(folder / "LICENSE", "is missing: the MIT notice must ship with the model") from None

    mesh = read_upstream_mesh(model_dir / "generic_neutral_mesh.obj", layout)
    topology = build_topology(mesh.vertices * CM_TO_M, mesh.uv, mesh.polygons, layout)
    names = [f"identity{k:03d}" for k in range(N_IDENTITY)] + expression_names
    from tqdm import tqdm

    n = len(topology.corners)
    directions = np.empty((n, 3, len(names)), dtype=np.float64)
    for column, name in enumerate(tqdm(names, desc="reading ICT shapes", unit="obj", disable=not show_progress)):
        directions[:, :, column] = topology.apply(read_obj_vertices(model_dir / f"{name}.obj", layout) - mesh.vertices) * CM_TO_M
    neutral = topology.apply(mesh.vertices * CM_TO_M)
    faces, origin = topology.faces, topology.origin
    landmarks = mesh.vertices[landmark_vertices] * CM_TO_M
    jaw_open = neutral + directions[:, :, N_IDENTITY + expression_names.index("jawOpen")]
    rigging = rig(neutral, jaw_open, landmarks, origin, layout)
    model = {
        "v_template": neutral.astype(np.float32),
        "f": faces.astype(np.uint32),
        # Identity displacements (at most ~14 mm) in float16 stay within 0.01 mm; expression
        # ones reach ~40 mm and stay float32 (mostly zeros, they compress well).
        "shapedirs": directions[:, :, :N_IDENTITY].astype(np.float16),
        "exprdirs": directions[:, :, N_IDENTITY:].astype(np.float32),
        "posedirs": np.zeros((n, 3, 36), dtype=np.float16),
        "J_regressor": rigging.j_regressor.astype(np.float32),
        "weights": rigging.weights.astype(np.float32),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32),
        "J": rigging.joints.astype(np.float32),
        "n_shape": np.array(N_IDENTITY, dtype=np.int64),
        "n_expression": np.array(len(expression_names), dtype=np.int64),
        "expression_names": np.array(expression_names),
        # ARKit blendshape weights: 0 is neutral, 1 the full shape; fits keep them in range.
        "expression_bounds": np.array([0.0, 1.0]),
        "model_name": np.array(MODEL_NAME),
        "upstream_corners": topology.corners.astype(np.int32),
        "upstream_bary": topology.bary.astype(np.float32),
    }
    masks = vertex_masks(neutral, landmarks, origin, layout)
    mean, basis = albedo_model(neutral, faces, topology.vt, topology.ft, landmarks, masks, rigging.joints[3:5])
    embedding = landmark_embedding(neutral, faces, landmarks, topology.triangles_of("face"))
    return ConvertedModel(model, embedding, masks, topology.vt, topology.ft, mean, basis, COMPONENT_NAMES, licence)


def _obj_text(vertices: np.ndarray, vt: np.ndarray, faces: np.ndarray, ft: np.ndarray) -> str:
    lines = [f"# {MODEL_NAME}: UV template (see LICENSE.ICT-FaceKit.txt)"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in vt]
    corners = np.stack([faces + 1, ft + 1], axis=-1).reshape(-1, 6)
    lines += ["f {}/{} {}/{} {}/{}".format(*row) for row in corners.tolist()]
    return "\n".join(lines) + "\n"


def write_converted(converted: ConvertedModel, out: str | Path) -> Path:
    """Write the folder (:data:`FILE_NAMES`), each file atomically and deterministically."""
    from flamefit.flame.texture_space_io import save_texture_space

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / "generic_model.npz", compressed=True, **converted.model)
    embedding = np.empty((), dtype=object)
    embedding[()] = converted.landmarks
    atomic_write(out / "landmark_embedding.npy", lambda s: np.save(s, embedding, allow_pickle=True))
    atomic_write(out / "FLAME_masks.pkl", lambda s: pickle.dump(converted.masks, s, protocol=2))
    write_text(out / "head_template_mesh.obj", _obj_text(converted.model["v_template"], converted.vt,
                                                         converted.model["f"].astype(np.int64), converted.ft))
    save_texture_space(out / "FLAME_texture.npz", converted.albedo_mean, converted.albedo_basis,
                       converted.vt, converted.ft,
                       {"model_name": "flamefit generated albedo for " + MODEL_NAME,
                        "components": "; ".join(converted.albedo_names)}, compressed=True)
    write_text(out / "LICENSE.ICT-FaceKit.txt", converted.licence)
    write_text(out / "README.txt", README.format(name=MODEL_NAME))
    return out


def convert_ict(folder: str | Path, out: str | Path, show_progress: bool = False,
                layout: UpstreamLayout = ICT_LIGHT) -> Path:
    """Convert an ICT-FaceKit checkout into a FLAME-format model folder ``out``; returns it.
    ``layout``: its neutral mesh's sizes and ranges (:func:`build_from_upstream`)."""
    return write_converted(build_from_upstream(folder, show_progress=show_progress, layout=layout), out)


README = """{name}

The files of this folder are ICT-FaceKit Light (github.com/ICT-VGL/ICT-FaceKit, USC Institute
for Creative Technologies, MIT licence: LICENSE.ICT-FaceKit.txt) converted into the FLAME file
formats by `flamefit convert-ict`. It is NOT FLAME. The albedo model (FLAME_texture.npz) is
generated by flamefit (ICT has none): a smooth skin-tone, lips, brows and eyes model, not
measured from photos.

generic_model.npz       identity (100, unit variance) + 53 ARKit expression shapes, 5 joints
landmark_embedding.npy  DECA's layout: 51 static points + 79 x 17 yaw-dependent contour
head_template_mesh.obj  the UV template (ICT's UDIM tiles packed into one atlas)
FLAME_masks.pkl         region masks (face, eyeballs, eye region, lips, nose, forehead, scalp, neck)
FLAME_texture.npz       the generated albedo model
"""
