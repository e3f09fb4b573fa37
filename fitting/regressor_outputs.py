"""Other regressors' and trackers' outputs, read as their tools save them, as a fit's start.

``flamefit fit --init FILE_OR_FOLDER`` and ``--shape-prior FILE`` read these unchanged (no
conversion script), find out which tool wrote them, and say so in the photo's report notes:

=========================  =====================================================================
format                     what is read (checked against the tool's own source)
=========================  =====================================================================
DECA codedict              a dict saved with ``np.save`` / ``pickle`` / ``torch.save`` (arrays or
                           tensors, batch of one): ``shape`` 100, ``exp`` 50, ``tex`` 50, ``pose`` 6
                           (global + jaw), ``cam`` 3, ``light`` 27 or 9x3, optional ``tform`` 3x3
                           (DECA's image -> crop similarity) or ``bbox``; ``detail``, ``images``
                           ... are ignored (``decalib/deca.py`` ``encode``)
EMOCA folder               ``shape.npy`` 100, ``exp.npy`` 50, ``tex.npy`` 50, ``pose.npy`` 6,
                           ``detail.npy``; inferno's EMOCA adds ``cam.npy`` and ``lightcode.npy``
                           (``gdl_apps/EMOCA/utils/io.py`` ``save_codes``)
EMICA folder               inferno's ``shape``, ``exp``, ``tex``, ``jawpose``, ``globalpose``,
                           ``cam``, ``lightcode`` ``.npy`` (``inferno_apps/FaceReconstruction/
                           utils/output.py``); also a dict of EMOCA's ``*code`` values
SMIRK dict                the encoder's outputs: ``pose_params`` 3, ``cam`` 3, ``shape_params``
                           300, ``expression_params`` 50, ``eyelid_params`` 2, ``jaw_params`` 3
                           (``src/smirk_encoder.py``)
MICA identity             ``identity.npy``: 300 shape coefficients only (``demo.py``)
metrical-tracker .frame    ``torch.save`` of ``flame`` {``exp``, ``shape``, ``tex``, ``sh``,
                           ``eyes`` 2 x 6-D, ``eyelids``, ``jaw`` 6-D}, ``camera``, ``opencv``
                           {``R``, ``t``, ``K``} (``tracker.py`` ``save_checkpoint``)
pixel3dmm .frame           ``flame`` {``exp``, ``shape``, ``eyes``, ``eyelids``, ``jaw``, ``neck``,
                           ``R`` 6-D head rotation, ``t``}, ``camera`` {``R_base_0`` ...}
                           (``src/pixel3dmm/tracking/tracker.py``)
VHAP                       ``tracked_flame_params*.npz``: per frame ``rotation``, ``translation``,
                           ``neck_pose``, ``jaw_pose``, ``eyes_pose``, ``expr``; ``shape``,
                           ``timestep_id`` (``vhap/model/tracker.py`` ``save_result``)
flame-head-tracker         per frame ``<id>.npz``: ``shape``, ``exp``, ``head_pose``, ``jaw_pose``,
                           ``eye_pose``, ``tex``, ``light``, ``cam`` 6 (Euler angles + position),
                           ``fov``, ``K`` (``tracker_base.py``, README)
RingNet                    ``params/<name>.npy``: a dict ``cam`` 3, ``pose`` 6, ``shape`` 100,
                           ``expression`` 50 (``demo.py``)
flamefit params.npz        ours (:mod:`flamefit.fitting.parameters`)
=========================  =====================================================================

Files are never unpickled freely: dicts go through the restricted unpickler of
:mod:`flamefit.flame.pickle_io` (arrays and tensors only) and PyTorch files through
``torch.load(weights_only=True)`` with NumPy's array reconstruction allowed, so a file cannot run
code. A key of the wrong size is one error line naming the layout expected.

Coordinates and conventions
---------------------------
Everything is turned into flamefit's parameters (:class:`flamefit.fitting.parameters.FitParameters`):
axis-angle poses in FLAME's model space (y up, +z toward the viewer), global, neck, jaw, left eye,
right eye. Trackers' 6-D rotations (the first two rows of the rotation matrix, PyTorch3D's
convention) and their head rotations kept in a camera (OpenCV, OpenGL or Euler angles) are turned
into axis-angle here with :func:`rotation_6d_to_matrix` and :func:`matrix_to_axis_angle`.

A weak-perspective camera ``[s, tx, ty]`` (DECA, EMOCA, EMICA, SMIRK, RingNet) lives in its
tool's crop: a 224² square in which the normalised coordinate ``n = s * (x + tx)`` lands on crop
pixel ``112 * (n + 1)`` (y flipped). That crop is taken from the file when it holds one (DECA's
``tform``, a ``bbox``), or rebuilt with the tool's own rule from the landmarks flamefit
detected (:data:`CROP_RULES`), and the camera is carried through the photo into the fit's crop.
Perspective trackers (metrical-tracker, pixel3dmm, VHAP, flame-head-tracker) worked on their own
frames: their rotations are kept and the camera is re-estimated from the landmarks at that pose.

The model in use
----------------
Shape, expression and texture coefficients are FLAME's: they are truncated or zero-padded to the
fitted sizes when FLAME is in use (and with the procedural test head, which stands in for FLAME
in the test suite), and dropped with a note when the model is not FLAME (the shipped open model:
its identity and expression spaces are ICT-FaceKit's). Poses, cameras and DECA-convention SH light
(:mod:`flamefit.renderer.shading`) are kept whatever the model.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flamefit.flame.pose_layout import EYES, GLOBAL, JAW, N_POSE, NECK

__all__ = [
    "CROP_RULES",
    "RegressorOutput",
    "ToolCrop",
    "read_regressor_output",
    "initial_values",
    "load_shape_prior",
    "model_kind",
    "is_output_folder",
    "init_folder",
    "rotation_6d_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_matrix",
    "camera_into_crop",
]

TOOL_CROP_SIZE = 224

#: Crop rules of the tools whose cameras are weak-perspective, as their code crops.
CROP_RULES = {
    "deca": "DECA's rule (the 68-landmark box's mean side x 1.1 x 1.25, centred on the box, "
            "-> 224², decalib/datasets/datasets.py; EMOCA and EMICA crop alike)",
    "smirk": "SMIRK's rule (the box of MediaPipe's 478 points, mean side x 1.4 -> 224², demo.py --crop)",
    "ringnet": "RingNet's rule (the whole photo, long side scaled to 224, centred, demo.py)",
    "tform": "the file's own crop (its tform)",
    "bbox": "the file's own crop (its bbox)",
}

_F = np.diag([1.0, -1.0, -1.0])  # y, z flipped: OpenCV camera axes <-> FLAME's (a turn of pi about x)


# -- rotations -----------------------------------------------------------------------------------
def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """``(..., 6)`` 6-D rotations -> ``(..., 3, 3)`` matrices (PyTorch3D's convention, which the
    trackers use: the two 3-vectors are the matrix's first two rows, Gram-Schmidt completed)."""
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-12)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-2)


def axis_angle_to_matrix(vector: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle (radians) -> ``(..., 3, 3)`` rotation matrices (Rodrigues)."""
    vector = np.asarray(vector, dtype=np.float64)
    angle = np.linalg.norm(vector, axis=-1)[..., None, None]
    axis = vector / np.maximum(angle[..., 0], 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                  np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 3)`` axis-angle (radians, angle in [0, pi]).

    Stable at small angles (first-order form) and near pi (axis from ``(R + I) / 2``)."""
    m = np.asarray(matrix, dtype=np.float64)
    batch = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    out = np.zeros((len(m), 3))
    for i, r in enumerate(m):
        cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
        angle = math.acos(cos)
        skew = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
        if angle < 1e-6:
            out[i] = 0.5 * skew
        elif math.pi - angle > 1e-3:
            out[i] = angle / (2.0 * math.sin(angle)) * skew
        else:  # near pi: the axis is the dominant column of (R + I) / 2, signed by the skew part
            sym = (r + np.eye(3)) / 2.0
            k = int(np.argmax(np.diag(sym)))
            axis = sym[:, k] / math.sqrt(max(sym[k, k], 1e-12))
            axis /= np.linalg.norm(axis)
            if skew @ axis < 0:
                axis = -axis
            out[i] = angle * axis
    return out.reshape(*batch, 3)


def _euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """flame-head-tracker's ``euler_to_matrix``: ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1.0]])
    ry = np.array([[cy, 0, sy], [0, 1.0, 0], [-sy, 0, cy]])
    rx = np.array([[1.0, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


# -- crops ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCrop:
    """Where a weak-perspective camera's crop lies in the photo.

    Attributes:
        rule: a key of :data:`CROP_RULES`, or ``"ours"`` (already the fit's crop).
        matrix: ``(3, 3)`` image -> crop-pixel similarity in the original photo's pixels (the
            file's ``tform``, or built from its ``bbox``), None for rebuilt rules.
        y_down: the tool's camera has y pointing down (RingNet's OpenCV renderer).
    """

    rule: str
    matrix: np.ndarray | None = None
    y_down: bool = False

    def describe(self) -> str:
        return CROP_RULES.get(self.rule, "the fit's own crop")


def _square_frame(centre: np.ndarray, side: float) -> tuple[np.ndarray, float]:
    """The tools' ``estimate_transform`` crop of a square of ``side`` (``int``-truncated, as they
    do) at ``centre``: corners onto crop pixels 0 and 223. Returns the photo point of the
    normalised origin (crop pixel 112) and the photo pixels per normalised unit."""
    size = float(int(side))
    if size <= 0:
        raise ValueError("the face is too small to rebuild the tool's crop")
    per_pixel = size / (TOOL_CROP_SIZE - 1)
    half = TOOL_CROP_SIZE / 2.0
    corner = np.asarray(centre, dtype=np.float64) - size / 2.0
    return corner + half * per_pixel, half * per_pixel


def _box(points: np.ndarray) -> tuple[np.ndarray, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2.0, float((high - low).sum()) / 2.0


def crop_frame(crop: ToolCrop, item) -> tuple[np.ndarray, float, str]:
    """The tool's crop in ``item.image.rgb`` pixels: the point of its normalised origin, the
    pixels per normalised unit, and a note saying which crop was used.

    Args:
        crop: the tool's crop.
        item: the :class:`flamefit.fitting.prepare.PreparedImage` (its landmarks, MediaPipe
            points and photo size).
    """
    image = item.image
    scale = float(getattr(image, "scale", 1.0))
    if crop.matrix is not None:
        a, b = crop.matrix[:2, :2], crop.matrix[:2, 2]
        zoom = math.sqrt(abs(np.linalg.det(a)))
        if zoom <= 0 or abs(a[0, 1]) > 1e-3 * zoom or abs(a[1, 0]) > 1e-3 * zoom:
            raise ValueError(f"its {crop.rule} is not an upright scale-and-shift crop "
                             f"({np.round(crop.matrix, 4).tolist()})")
        half = TOOL_CROP_SIZE / 2.0
        origin = (np.array([half, half]) - b) / np.diag(a)
        return origin * scale, half / zoom * scale, crop.describe()
    if crop.rule == "deca":
        centre, side = _box(np.asarray(item.landmarks, dtype=np.float64))
        origin, unit = _square_frame(centre, side * 1.1 * 1.25)
        return origin, unit, CROP_RULES["deca"] + ", rebuilt from the detected landmarks"
    if crop.rule == "smirk":
        dense = getattr(item, "dense", None)
        points = None if dense is None else np.asarray(dense, dtype=np.float64)
        if points is not None and np.isfinite(points).all():
            note = CROP_RULES["smirk"] + ", rebuilt from the detected MediaPipe points"
        else:
            points = np.asarray(item.landmarks, dtype=np.float64)
            note = CROP_RULES["smirk"] + ", rebuilt from the 68 landmarks (no MediaPipe points)"
        centre, side = _box(points)
        origin, unit = _square_frame(centre, side * 1.4)
        return origin, unit, note
    if crop.rule == "ringnet":
        height, width = (int(v) for v in image.original_size)
        factor = TOOL_CROP_SIZE / max(height, width)
        sized = np.floor(np.array([width, height]) * factor)  # x, y
        per_axis = sized / np.array([width, height])
        centre = np.round(np.array([height, width]) / 2.0)[::-1]
        centre_scaled = np.round(centre * per_axis)
        origin = centre_scaled / per_axis
        unit = float(np.mean(TOOL_CROP_SIZE / 2.0 / per_axis))
        return origin * scale, unit * scale, CROP_RULES["ringnet"]
    raise ValueError(f"unknown crop rule {crop.rule!r}")


def camera_into_crop(camera: np.ndarray, origin: np.ndarray, unit: float, transform,
                     resolution: int) -> tuple[float, np.ndarray]:
    """A weak-perspective camera of another tool's crop, as the fit crop's similarity.

    The tool projects model ``(x, y)`` to photo pixels ``origin + unit * s * (x + tx)`` and
    ``origin_y - unit * s * (y + ty)``; the fit's crop (``transform``, pixel-index coordinates)
    puts them at screen pixels (centres at +0.5). The result ``(scale, shift)`` is what
    :meth:`flamefit.renderer.camera_models.CameraModel.from_similarity` takes:
    ``px = R/2 + R/2 * scale * (x + shift_x)``, ``py = R/2 - R/2 * scale * (y + shift_y)``.
    """
    s, tx, ty = (float(v) for v in camera)
    if not s > 0:
        raise ValueError(f"its camera scale is {s}; a weak-perspective scale must be positive")
    centre = transform.to_crop(np.asarray(origin, dtype=np.float64)) + 0.5  # screen pixels
    per_unit = transform.zoom * unit * s  # crop pixels per metre
    half = resolution / 2.0
    scale = per_unit / half
    shift = np.array([tx + (centre[0] - half) / per_unit, ty - (centre[1] - half) / per_unit])
    return scale, shift


# -- reading -------------------------------------------------------------------------------------
@dataclass
class RegressorOutput:
    """One face's parameters as another tool saved them, in flamefit's conventions.

    Attributes:
        format: which tool's layout it is (``"DECA codedict"``, ``"MICA identity"``, ...).
        path: the file or folder read.
        shape, expression, texture: the tool's coefficient vectors, as long as it saved them
            (FLAME's spaces, or for ``ours`` the model that wrote them).
        pose: ``(15,)`` axis-angle, model space (global, neck, jaw, left eye, right eye), or None.
        light: ``(9, 3)`` SH light in DECA's convention, or None.
        camera: ``(3,)`` weak-perspective ``[s, tx, ty]`` in the tool's crop (``crop``), or our
            camera (``crop.rule == "ours"``), or None.
        crop: where ``camera``'s crop lies.
        camera_type: for our ``params.npz``, the camera model it was fitted with (when saved).
        ours: a flamefit ``params.npz`` (coefficients of the model that wrote it).
        notes: what was read and left out.
    """

    format: str
    path: Path
    shape: np.ndarray | None = None
    expression: np.ndarray | None = None
    texture: np.ndarray | None = None
    pose: np.ndarray | None = None
    light: np.ndarray | None = None
    camera: np.ndarray | None = None
    crop: ToolCrop | None = None
    camera_type: str | None = None
    ours: bool = False
    notes: list[str] = field(default_factory=list)
    perspective: bool = False


FORMAT_NAMES = ("DECA codedicts, EMOCA/EMICA folders, SMIRK dicts, MICA identity.npy, "
                "metrical-tracker/pixel3dmm .frame, VHAP tracked_flame_params*.npz, "
                "flame-head-tracker <id>.npz, RingNet params/<name>.npy, flamefit params.npz")

_TORCH_SUFFIXES = {".pt", ".pth", ".frame", ".tar", ".ckpt"}


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` allowing NumPy arrays (trackers save them inside),
    whichever NumPy (``numpy.core`` or ``numpy._core``) wrote them."""
    import torch

    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray
    allowed: list = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
                     (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                     (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
                     (multiarray.scalar, "numpy.core.multiarray.scalar"),
                     (multiarray.scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16,
                                            np.int32, np.int64, np.uint8, np.bool_, np.str_)]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def _plain(value: Any) -> Any:
    """Tensors -> arrays, recursively through dicts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def _load_container(path: Path) -> Any:
    """A file's content: a dict, or an array (``.npy`` without pickle), read safely.

    Raises:
        ValueError: not readable as NumPy, pickle or PyTorch data, in one line.
    """
    from flamefit.flame.errors import ModelFileError
    from flamefit.flame.pickle_io import load_object_npy, load_pickle

    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
    except OSError as error:
        raise ValueError(f"cannot read it ({error.strerror or error})") from None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if any(name.endswith("data.pkl") for name in names):
                return _plain(_torch_load(path))
            try:
                with np.load(path, allow_pickle=False) as data:
                    return {k: data[k] for k in data.files}
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise ValueError("holds pickled Python objects inside the .npz, which flamefit "
                                     "does not load (they can run code); save plain arrays") from None
                raise
        if head.startswith(b"\x93NUMPY"):
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as error:
                if "allow_pickle" not in str(error):
                    raise
            value = load_object_npy(path, allow_torch=True)
            if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
                value = value.item()
            return _plain(value)
        if head[:1] == b"\x80":
            if path.suffix.lower() in _TORCH_SUFFIXES:
                return _plain(_torch_load(path))
            return _plain(load_pickle(path, allow_torch=True))
    except ModelFileError as error:
        raise ValueError(f"refused: {error.problem}".replace("FLAME files contain only arrays",
                                                              "parameter files hold only arrays")) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, RuntimeError,
            ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot read it ({text[:200]})") from None
    if path.suffix.lower() == ".npz":
        raise ValueError("not a valid .npz file (not a zip archive, or truncated)")
    if path.suffix.lower() == ".npy":
        raise ValueError("not a valid .npy file (no NumPy header)")
    raise ValueError("is not a NumPy (.npy/.npz), pickle (.pkl) or PyTorch (.pt/.frame) file")


class _Reader:
    """Takes checked arrays out of one tool's dict; every error names the file and layout."""

    def __init__(self, raw: dict, fmt: str, path: Path):
        self.raw, self.fmt, self.path = raw, fmt, path

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.path}: {self.fmt}: {problem}")

    def get(self, key: str, sizes, meaning: str, matrix: bool = False,
            required: bool = False, source: dict | None = None, where: str = "") -> np.ndarray | None:
        """The flattened float array of ``key`` (a batch axis of one dropped), or None.

        Args:
            sizes: allowed value counts (a tuple or a range).
            meaning: what the key holds, for the error message.
            matrix: the key's own shape is 2-D (light 9x3, a 3x3 matrix).
        """
        table = self.raw if source is None else source
        label = f"`{where}{key}`"
        if key not in table or table[key] is None:
            if required:
                raise self.fail(f"has no {label} ({meaning})")
            return None
        try:
            value = np.asarray(table[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise self.fail(f"{label} is not an array of numbers ({meaning})") from None
        own = 2 if matrix else 1
        while value.ndim > own and value.shape[0] == 1:
            value = value[0]
        if value.ndim > own:
            raise self.fail(f"{label} holds {value.shape[0]} faces {tuple(value.shape)}; flamefit reads "
                            "one face per file (save one file per photo)")
        if value.size not in sizes:
            raise self.fail(f"{label} has {value.size} values, expected {_expected(sizes)} ({meaning})")
        if not np.isfinite(value).all():
            raise self.fail(f"{label} holds NaN or infinite values")
        return value.reshape(-1)


def _expected(sizes) -> str:
    if isinstance(sizes, range):
        return f"{sizes.start} to {sizes.stop - 1}"
    return " or ".join(str(s) for s in sizes)


def _pose(global_=None, neck=None, jaw=None, eyes=None) -> np.ndarray:
    pose = np.zeros(N_POSE)
    for part, value in ((GLOBAL, global_), (NECK, neck), (JAW, jaw), (EYES, eyes)):
        if value is not None:
            pose[part] = value
    return pose


def _light(value: np.ndarray | None) -> np.ndarray | None:
    return None if value is None else value.reshape(9, 3)


def _crop_from(reader: _Reader, rule: str) -> ToolCrop:
    """The file's own crop (``tform`` 3x3 image -> crop, or ``bbox`` x0, y0, x1, y1 in photo
    pixels) if it holds one, else the tool's ``rule``."""
    tform = reader.get("tform", (9,), "the 3x3 image-to-crop similarity", matrix=True)
    if tform is not None:
        return ToolCrop("tform", tform.reshape(3, 3))
    box = reader.get("bbox", (4,), "the square crop x0, y0, x1, y1 in photo pixels")
    if box is not None:
        x0, y0, x1, _ = box
        if not x1 > x0:
            raise reader.fail(f"`bbox` {box.tolist()} is empty")
        zoom = (TOOL_CROP_SIZE - 1) / (x1 - x0)
        return ToolCrop("bbox", np.array([[zoom, 0, -zoom * x0], [0, zoom, -zoom * y0], [0, 0, 1.0]]))
    return ToolCrop(rule)


def _read_deca(raw: dict, path: Path) -> RegressorOutput:
    r = _Reader(raw, "DECA codedict", path)
    pose = r.get("pose", (6,), "global + jaw axis-angle", required=True)
    return RegressorOutput(
        format=r.fmt, path=path,
        shape=r.get("shape", (100,), "DECA's shape code", required=True),
        expression=r.get("exp", (50,), "DECA's expression code", required=True),
        texture=r.get("tex", (50,), "DECA's albedo code"),
        pose=_pose(global_=pose[:3], jaw=pose[3:]),
        light=_light(r.get("light", (27,), "9 SH x RGB", matrix=True)),
        camera=r.get("cam", (3,), "weak-perspective s, tx, ty"),
        crop=_crop_from(r, "deca"))


def _read_emoca(raw: dict, path: Path, fmt: str) -> RegressorOutput:
    names = {k[:-4] if k.endswith("code") and k != "lightcode" else k: v for k, v in raw.items()}
    r = _Reader(names, fmt, path)
    if fmt.startswith("EMICA"):
        shape_sizes, exp_sizes = (100, 300), (50, 100)
        pose = _pose(global_=r.get("globalpose", (3,), "global axis-angle"),
                     jaw=r.get("jawpose", (3,), "jaw axis-angle"))
    else:
        shape_sizes, exp_sizes = (100,), (50,)
        both = r.get("pose", (6,), "global + jaw axis-angle", required=True)
        pose = _pose(global_=both[:3], jaw=both[3:])
    return RegressorOutput(
        format=fmt, path=path,
        shape=r.get("shape", shape_sizes, "FLAME shape code", required=True),
        expression=r.get("exp", exp_sizes, "FLAME expression code"),
        texture=r.get("tex", range(1, 201), "albedo code"),
        pose=pose,
        light=_light(r.get("lightcode", (27,), "9 SH x RGB", matrix=True)),
        camera=r.get("cam", (3,), "weak-perspective s, tx, ty"),
        crop=ToolCrop("deca"))


def _read_smirk(raw: dict, path: Path) -> RegressorOutput:
    r = _Reader(raw, "SMIRK dict", path)
    out = RegressorOutput(
        format=r.fmt, path=path,
        shape=r.get("shape_params", (300,), "SMIRK's shape code", required=True),
        expression=r.get("expression_params", (50,), "SMIRK's expression code", required=True),
        pose=_pose(global_=r.get("pose_params", (3,), "global axis-angle", required=True),
                   jaw=r.get("jaw_params", (3,), "jaw axis-angle", required=True)),
        camera=r.get("cam", (3,), "weak-perspective s, tx, ty", required=True),
        crop=_crop_from(r, "smirk"))
    if r.get("eyelid_params", (2,), "the two eyelid closures") is not None:
        out.notes.append("eyelid_params left out (FLAME 2020 has no eyelid blendshapes)")
    return out


def _read_ringnet(raw: dict, path: Path) -> RegressorOutput:
    r = _Reader(raw, "RingNet params", path)
    both = r.get("pose", (6,), "global + jaw axis-angle", required=True)
    return RegressorOutput(
        format=r.fmt, path=path,
        shape=r.get("shape", (100,), "RingNet's shape code", required=True),
        expression=r.get("expression", (50,), "RingNet's expression code", required=True),
        pose=_pose(global_=both[:3], jaw=both[3:]),
        camera=r.get("cam", (3,), "weak-perspective s, tx, ty", required=True),
        crop=ToolCrop("ringnet", y_down=True))


def _read_frame(raw: dict, path: Path) -> RegressorOutput:
    flame = raw["flame"]
    if not isinstance(flame, dict):
        raise ValueError(f"{path}: a tracker .frame's `flame` is not a dict")
    pixel3dmm = "R" in flame or "neck" in flame
    fmt = "pixel3dmm .frame" if pixel3dmm else "metrical-tracker .frame"
    r = _Reader(raw, fmt, path)
    camera = raw.get("camera") if isinstance(raw.get("camera"), dict) else {}

    def get(key, sizes, meaning, **kw):
        return r.get(key, sizes, meaning, source=flame, where="flame.", **kw)

    jaw = get("jaw", (6,), "jaw 6-D rotation", required=True)
    eyes = get("eyes", (12,), "two eye 6-D rotations")
    neck = get("neck", (6,), "neck 6-D rotation")
    if pixel3dmm:
        head = r.get("R_rotation_matrix", (9,), "head rotation matrix", matrix=True, source=flame,
                     where="flame.")
        head = (rotation_6d_to_matrix(get("R", (6,), "head 6-D rotation", required=True))
                if head is None else head.reshape(3, 3))
        base = r.get("R_base_0", (9,), "OpenGL world-to-camera rotation", matrix=True,
                     source=camera, where="camera.")
        rotation = head if base is None else base.reshape(3, 3) @ head  # OpenGL camera = our axes
    else:
        opencv = raw.get("opencv") if isinstance(raw.get("opencv"), dict) else {}
        cv = r.get("R", (9,), "OpenCV world-to-camera rotation", matrix=True, source=opencv,
                   where="opencv.")
        if cv is not None:
            rotation = _F @ cv.reshape(3, 3)
        else:
            p3d = r.get("R", (6,), "PyTorch3D camera 6-D rotation", source=camera, where="camera.")
            rotation = (np.eye(3) if p3d is None
                        else np.diag([-1.0, 1.0, -1.0]) @ rotation_6d_to_matrix(p3d).T)
    out = RegressorOutput(
        format=fmt, path=path,
        shape=get("shape", range(1, 301), "FLAME shape code", required=True),
        expression=get("exp", range(1, 101), "FLAME expression code", required=True),
        texture=get("tex", range(1, 201), "FLAME albedo code"),
        light=_light(get("sh", (27,), "9 SH x RGB", matrix=True)),
        pose=_pose(global_=matrix_to_axis_angle(rotation),
                   neck=None if neck is None else matrix_to_axis_angle(rotation_6d_to_matrix(neck)),
                   jaw=matrix_to_axis_angle(rotation_6d_to_matrix(jaw)),
                   eyes=None if eyes is None
                   else matrix_to_axis_angle(rotation_6d_to_matrix(eyes.reshape(2, 6))).reshape(-1)),
        perspective=True)
    if get("eyelids", (2,), "the two eyelid closures") is not None:
        out.notes.append("eyelids left out (FLAME 2020 has no eyelid blendshapes)")
    return out


def _frame_index(raw: dict, reader: _Reader, frame: str | None, count: int) -> int:
    """Which row of a multi-frame file is this photo: the only one, or the one whose
    ``timestep_id`` is the photo's id or stem."""
    if count == 1:
        return 0
    ids = [str(v) for v in np.asarray(raw.get("timestep_id", [])).reshape(-1)]
    wanted = set() if frame is None else {frame, frame.rsplit("/", 1)[-1]}
    for index, name in enumerate(ids):
        if name in wanted or Path(name).stem in wanted:
            return index
    raise reader.fail(f"holds {count} frames and none has the photo's name "
                      f"({' or '.join(sorted(wanted)) or 'unknown'}) as its timestep_id "
                      f"({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})")


def _read_vhap(raw: dict, path: Path, frame: str | None) -> RegressorOutput:
    r = _Reader(raw, "VHAP tracked_flame_params", path)
    try:
        count = int(np.asarray(raw["rotation"]).reshape(-1, 3).shape[0])
    except (ValueError, TypeError):
        raise r.fail(f"`rotation` has shape {np.shape(raw['rotation'])}, expected (frames, 3)") from None
    row = _frame_index(raw, r, frame, count)

    def per_frame(key, size, meaning, required=False):
        if key not in raw:
            if required:
                raise r.fail(f"has no `{key}` ({meaning})")
            return None
        value = np.asarray(raw[key])
        if value.ndim < 1 or value.shape[0] != count:
            raise r.fail(f"`{key}` has shape {value.shape}, expected ({count}, {_expected(size)}): "
                         f"one {meaning} per frame")
        return r.get(key, size, meaning, source={key: value[row]})

    out = RegressorOutput(
        format=r.fmt, path=path,
        shape=r.get("shape", range(1, 301), "FLAME shape code", required=True),
        expression=per_frame("expr", range(1, 101), "FLAME expression code", required=True),
        pose=_pose(global_=per_frame("rotation", (3,), "global axis-angle", required=True),
                   neck=per_frame("neck_pose", (3,), "neck axis-angle"),
                   jaw=per_frame("jaw_pose", (3,), "jaw axis-angle"),
                   eyes=per_frame("eyes_pose", (6,), "two eye axis-angles")),
        perspective=True)
    if count > 1:
        out.notes.append(f"frame {row} of {count}")
    return out


def _read_fht(raw: dict, path: Path) -> RegressorOutput:
    r = _Reader(raw, "flame-head-tracker", path)
    cam = r.get("cam", (6,), "camera Euler angles + position", required=True)
    # The tracker stores its camera-to-world rotation as Euler angles (tracker_base.py turns its
    # axis-angle into them with rotation_vector_to_euler_angles); the head, seen from that camera,
    # is turned by the rotation's transpose, after the FLAME global (head_pose, zero in practice).
    view = _euler_to_matrix(*cam[:3])
    head = r.get("head_pose", (3,), "global axis-angle")
    rotation = view.T @ (np.eye(3) if head is None else axis_angle_to_matrix(head))
    return RegressorOutput(
        format=r.fmt, path=path,
        shape=r.get("shape", range(1, 301), "FLAME shape code", required=True),
        expression=r.get("exp", range(1, 101), "FLAME expression code", required=True),
        texture=r.get("tex", range(1, 201), "albedo code"),
        light=_light(r.get("light", (27,), "9 SH x RGB", matrix=True)),
        pose=_pose(global_=matrix_to_axis_angle(rotation),
                   neck=r.get("neck_pose", (3,), "neck axis-angle"),
                   jaw=r.get("jaw_pose", (3,), "jaw axis-angle", required=True),
                   eyes=r.get("eye_pose", (6,), "two eye axis-angles")),
        perspective=True)


def _read_ours(raw: dict, path: Path) -> RegressorOutput:
    r = _Reader(raw, "flamefit params.npz", path)
    anything = range(1, 100_000)
    pose = r.get("pose", (N_POSE, 6), "15 axis-angle values, or 6 (global + jaw)")
    if pose is not None and pose.size == 6:
        pose = _pose(global_=pose[:3], jaw=pose[3:])
    camera_type = raw.get("camera_type")
    return RegressorOutput(
        format=r.fmt, path=path, ours=True,
        shape=r.get("shape", anything, "shape coefficients"),
        expression=r.get("expression", anything, "expression coefficients"),
        texture=r.get("texture", anything, "albedo coefficients"),
        pose=pose,
        light=_light(r.get("light", (27,), "9 SH x RGB", matrix=True)),
        camera=r.get("camera", (3,), "the fit's camera"),
        crop=ToolCrop("ours"),
        camera_type=None if camera_type is None else str(np.asarray(camera_type)))


def _read_folder(folder: Path) -> tuple[dict, str]:
    """An EMOCA / EMICA / MICA output folder as a dict of its arrays, and its format."""
    arrays = {}
    for file in sorted(folder.glob("*.npy")):
        try:
            arrays[file.stem] = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{file}: cannot read it ({str(error).splitlines()[0][:200]})") from None
    if "jawpose" in arrays or "globalpose" in arrays:
        return arrays, "EMICA folder"
    if "pose" in arrays and "shape" in arrays:
        return arrays, "EMOCA folder"
    if "identity" in arrays:
        return arrays, "MICA identity"
    raise ValueError(f"{folder}: a folder, but not an EMOCA/EMICA output folder (shape.npy, exp.npy, "
                     "pose.npy or jawpose.npy ...) nor MICA's (identity.npy)")


def is_output_folder(path: Path) -> bool:
    """Whether ``path`` is a folder a regressor wrote for one face (EMOCA, EMICA, MICA)."""
    path = Path(path)
    return path.is_dir() and any((path / f"{name}.npy").is_file()
                                 for name in ("shape", "identity", "jawpose", "pose"))


def init_folder(given: Path, photo_id: str, n_photos: int) -> Path | None:
    """``--init FOLDER``'s entry for one photo when it holds no ``<id>.<ext>`` file: the
    ``params.npz`` of a flamefit result folder ``FOLDER/<id>/`` (``flamefit fit`` or ``flamefit
    regress`` output), the regressor folder ``FOLDER/<id>/``, or for a run of one photo the same
    in ``FOLDER`` itself."""
    from flamefit.fitting.results import PARAMS_FILE

    candidates = [Path(given) / photo_id] + ([Path(given)] if n_photos == 1 else [])
    for entry in candidates:
        if (entry / PARAMS_FILE).is_file():
            return entry / PARAMS_FILE
        if is_output_folder(entry):
            return entry
    return None


def _mica(value: Any, path: Path) -> RegressorOutput:
    r = _Reader({"identity": value}, "MICA identity", path)
    return RegressorOutput(format=r.fmt, path=path,
                           shape=r.get("identity", (300,), "MICA's 300 FLAME shape coefficients",
                                       required=True))


def read_regressor_output(path: str | Path, frame: str | None = None) -> RegressorOutput:
    """Read another tool's output for one face (see the module's table), as it saved it.

    Args:
        path: the file, or an EMOCA / EMICA / MICA output folder.
        frame: the photo's id, to pick its row of a multi-frame file (VHAP).

    Raises:
        ValueError: unreadable, of no known layout, or a key of the wrong size: one line naming
            the file and the layout expected.
    """
    path = Path(path)
    if path.is_dir():
        raw, fmt = _read_folder(path)
        if fmt == "MICA identity":
            return _mica(raw["identity"], path / "identity.npy")
        return _read_emoca(raw, path, fmt)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        raw = _load_container(path)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        return _mica(raw, path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: holds a {type(raw).__name__}, not a dict of parameters; "
                         f"flamefit reads {FORMAT_NAMES}")
    keys = set(raw)
    if isinstance(raw.get("flame"), dict):
        return _read_frame(raw, path)
    if {"rotation", "expr"} <= keys:
        return _read_vhap(raw, path, frame)
    if "head_pose" in keys or {"jaw_pose", "eye_pose", "exp"} <= keys:
        return _read_fht(raw, path)
    if keys & {"shape_params", "expression_params", "pose_params", "jaw_params"}:
        return _read_smirk(raw, path)
    if keys & {"jawpose", "globalpose"}:
        return _read_emoca(raw, path, "EMICA dict")
    if keys & {"shapecode", "expcode", "posecode"}:
        return _read_emoca(raw, path, "EMOCA dict")
    if {"expression", "cam"} <= keys and "camera" not in keys:
        return _read_ringnet(raw, path)
    if keys & {"exp", "cam", "tex"}:
        return _read_deca(raw, path)
    if keys & {"shape", "expression", "pose", "texture", "light", "camera"}:
        return _read_ours(raw, path)
    if "identity" in keys:
        return _mica(raw["identity"], path)
    shown = ", ".join(sorted(keys)[:8]) + (", ..." if len(keys) > 8 else "")
    raise ValueError(f"{path}: holds no known layout (keys: {shown or 'none'}); flamefit reads {FORMAT_NAMES}")


# -- using it ------------------------------------------------------------------------------------
def model_kind(scene) -> str:
    """``"flame"``, ``"open"``, ``"test"`` (the procedural test head) or ``"other"`` for the
    scene's model (:attr:`flamefit.flame.selection.ModelFiles.kind`)."""
    kind = getattr(scene, "model_kind", None)
    if kind:
        return kind
    from flamefit.flame.selection import OPEN_MODEL_NAME

    text = getattr(scene, "description", "") or ""
    if text == OPEN_MODEL_NAME:
        return "open"
    if text.startswith("procedural test head"):
        return "test"
    if text.startswith("FLAME"):
        return "flame"
    return "other"


def _coefficients_apply(output: RegressorOutput, scene) -> bool:
    return output.ours or model_kind(scene) in ("flame", "test")


def _sized(value: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[: min(size, value.size)] = value[:size]
    return out


def _root_joint(scene, values: dict) -> np.ndarray:
    """The model's root joint (model space, metres) at the initial shape and expression."""
    import torch

    device = next(scene.buffers()).device
    with torch.no_grad():
        kwargs = {key: torch.as_tensor(values[key], dtype=torch.float32, device=device)[None]
                  for key in ("shape", "expression") if key in values}
        joints = scene.flame(pose=torch.zeros(1, N_POSE, device=device), **kwargs).joints
    return joints[0, 0].double().cpu().numpy()


def initial_values(output: RegressorOutput, item, scene, resolution: int) -> tuple[dict, list[str]]:
    """The fit's initial values for one photo from another tool's output, and report notes.

    Args:
        output: from :func:`read_regressor_output`.
        item: the prepared photo (:class:`flamefit.fitting.prepare.PreparedImage`): its crop,
            landmarks and photo size place the tool's crop.
        scene: the :class:`flamefit.fitting.scene.HeadScene` fitted (model sizes, camera model).
        resolution: the fit's crop side (px).

    Returns:
        ``(values, notes)``: values as :func:`flamefit.fitting.parameters.load_initialisation`
        gives them (some of ``shape``, ``expression``, ``texture``, ``pose``, ``light``,
        ``camera``); without ``camera`` the fit estimates it from the landmarks at ``pose``.

    Raises:
        ValueError: the camera cannot be placed (a degenerate crop or scale), in one line.
    """
    import torch

    values: dict[str, np.ndarray] = {}
    notes = [f"init: {output.format} ({output.path.name})" + "".join(f"; {n}" for n in output.notes)]
    sizes = {"shape": scene.flame.n_shape, "expression": scene.flame.n_expression,
             "texture": scene.albedo.n_components}
    present = [k for k in sizes if getattr(output, k) is not None]
    if _coefficients_apply(output, scene):
        changed = []
        for key in present:
            value = getattr(output, key)
            values[key] = _sized(value, sizes[key])
            if value.size != sizes[key]:
                changed.append(f"{key} {value.size} -> {sizes[key]}")
        if changed:
            notes[0] += "; coefficients resized to the model's: " + ", ".join(changed)
    elif present:
        notes.append(f"init: {', '.join(present)} of the {output.format} dropped: they are FLAME "
                     f"coefficients and the model in use ({getattr(scene, 'description', 'not FLAME')}) "
                     "is not FLAME; pose, camera and light kept")
    if output.pose is not None:
        values["pose"] = output.pose.astype(np.float32)
    if output.light is not None:
        values["light"] = output.light.astype(np.float32)
    if output.camera is None:
        if output.perspective:
            notes[0] += ("; its perspective camera belongs to its own frame: the camera is estimated "
                         "from the landmarks at its pose")
        elif output.pose is not None:
            notes[0] += "; no camera saved: estimated from the landmarks at its pose"
        return values, notes
    if output.crop is None or output.crop.rule == "ours":
        if output.camera_type is not None and output.camera_type != scene.camera_type:
            notes[0] += (f"; its {output.camera_type} camera left out (this fit's is "
                         f"{scene.camera_type}): estimated from the landmarks")
        else:
            values["camera"] = output.camera.astype(np.float32)
        return values, notes
    camera = np.array(output.camera, dtype=np.float64)
    origin, unit, crop_note = crop_frame(output.crop, item)
    if output.crop.y_down:
        # RingNet's renderer looks down +z with y down, so its global pose holds a half turn about
        # x; ours looks from +z with y up. Its image y is ``oy + unit * s * (y_r + ty)``.
        rotation = axis_angle_to_matrix(values.get("pose", np.zeros(N_POSE))[GLOBAL])
        if rotation[2, 2] < 0:  # the face turned away from our viewer: remove the half turn
            values["pose"][GLOBAL] = matrix_to_axis_angle(_F @ rotation).astype(np.float32)
            camera[2] = -camera[2] - 2.0 * _root_joint(scene, values)[1]
            crop_note += "; its y-down global pose turned into flamefit's y-up frame"
        else:
            camera[2] = -camera[2]
    scale, shift = camera_into_crop(camera, origin, unit, item.transform, resolution)
    with torch.no_grad():
        converted = scene.camera_from_similarity(
            torch.tensor([scale], dtype=torch.float32), torch.tensor(shift[None], dtype=torch.float32),
            resolution)
    values["camera"] = converted[0].cpu().numpy().astype(np.float32)
    notes[0] += f"; camera moved from {crop_note} into the fit's crop"
    return values, notes


def load_shape_prior(path: str | Path, scene) -> tuple[np.ndarray, str]:
    """The shape ``--shape-prior`` pulls the fit toward, sized to the model's, and its format.

    Raises:
        ValueError: unreadable, without shape coefficients, or FLAME coefficients for a model
            that is not FLAME (one line).
    """
    output = read_regressor_output(path)
    if output.shape is None:
        raise ValueError(f"{path}: the {output.format} holds no shape coefficients")
    if not _coefficients_apply(output, scene):
        raise ValueError(f"{path}: the {output.format}'s shape coefficients are FLAME's, but the model "
                         f"in use ({getattr(scene, 'description', 'not FLAME')}) is not FLAME; use "
                         "FLAME (data/flame/, see data/README.md) or a params.npz fitted with this model")
    return _sized(output.shape, scene.flame.n_shape), output.format
