"""MediaPipe's face detector, 468-point face mesh and iris networks, run offline: 478 points.

The four ``.tflite`` networks ship in ``fitting/mediapipe_models/`` (Apache-2.0, unchanged from
the mediapipe 0.10.21 wheel) and run on Google's LiteRT interpreter (``ai-edge-litert``, the
``[mediapipe]`` extra), which works with NumPy 2; the ``mediapipe`` package itself is not used
(0.10.21 pins ``numpy<2``, later wheels ship no models). The pre- and post-processing is ours:

1. **Faces**: BlazeFace short-range (128², faces filling a good part of the photo), and the
   full-range one (192²) when that finds nothing; the photo is letterboxed to a square, anchors
   are decoded and overlapping detections merged by score-weighted averaging. Each detection has
   a box, six key points (eyes, nose tip, mouth, ears) and a confidence.
2. **Face mesh**: a square region around the face (1.5x the box, rotated so that the eyes are
   level) resampled to 192², 468 points; then once more in the region the first mesh spans
   (MediaPipe's tracking rule, which centres the face as the network was trained on).
3. **Irises**: each eye's region (2.3x the eye-corner distance, rotated with the eye) resampled
   to 64² (the subject's left eye mirrored: the network is trained on right eyes); five points
   per iris, centre first.

Point layout (MediaPipe's 478): ``0..467`` the face mesh, :data:`RIGHT_IRIS` ``468..472`` the
subject's right iris (the image's left in a frontal photo, beside mesh points 33/133),
:data:`LEFT_IRIS` ``473..477`` the left one (beside 362/263). All coordinates are pixel indices of
the photo given (origin at the top-left pixel's centre, x right, y down), like
:mod:`flamefit.fitting.detect`'s.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from flamefit.fitting.errors import DetectorUnavailableError

MODELS_DIR = Path(__file__).resolve().parent / "mediapipe_models"

N_MESH = 468
N_DENSE = 478
RIGHT_IRIS = slice(468, 473)
LEFT_IRIS = slice(473, 478)
#: Mesh points at the corners of each eye (outer, inner for the right eye; inner, outer for the
#: left), running from the image's left to its right in an upright face.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
#: Mesh points whose line sets the face region's rotation (the outer eye corners).
ROTATION_POINTS = (33, 263)

#: Detections below this confidence are dropped (MediaPipe's default is 0.5).
MIN_DETECTION_CONFIDENCE = 0.5
#: Detections overlapping more than this (IoU) are merged.
MERGE_IOU = 0.3
#: Face region side as a multiple of the detection box side, or of the mesh's extent.
FACE_REGION_SCALE = 1.5
#: Eye region side as a multiple of the eye-corner distance.
EYE_REGION_SCALE = 2.3
#: Meshes whose face-presence probability is below this are not faces ...
MIN_PRESENCE = 0.5
#: ... unless BlazeFace found the face with at least this confidence and the presence is at
#: least :data:`MIN_PROFILE_PRESENCE`: the mesh network doubts steep profiles (~0.02 at 90
#: degrees of yaw on renders of the open model) that BlazeFace finds at ~0.8.
CONFIDENT_DETECTION = 0.7
MIN_PROFILE_PRESENCE = 0.005
#: Face-mesh passes: the first in the region from the detection, the others in the region the
#: previous mesh spans.
MESH_PASSES = 2


@dataclass(frozen=True)
class RotatedSquare:
    """A square region of a photo, rotated: the frame a network's input is resampled from.

    Attributes:
        centre: ``(2,)`` centre, continuous photo coordinates (pixel ``i`` spans ``[i, i+1)``).
        side: side length, photo pixels.
        angle: rotation of the square's x axis from the photo's x axis (radians; the photo's y
            axis points down, so a positive angle turns clockwise on screen).
    """

    centre: np.ndarray
    side: float
    angle: float = 0.0

    def crop_to_photo(self, size: int) -> np.ndarray:
        """``(2, 3)`` affine from continuous crop coordinates (``[0, size]``) to continuous photo
        coordinates."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        basis = np.array([[c, -s], [s, c]]) * (self.side / size)
        offset = np.asarray(self.centre, np.float64) - basis @ np.array([size / 2, size / 2])
        return np.hstack([basis, offset[:, None]])

    def resample(self, rgb: np.ndarray, size: int, mirror: bool = False) -> np.ndarray:
        """The region as a ``(size, size, 3)`` float32 image in ``[0, 1]`` (zeros outside the
        photo); ``mirror`` flips it left-right."""
        to_photo = self.crop_to_photo(size)
        # cv2 works in pixel-index coordinates: index = continuous - 0.5 on both sides.
        shift = to_photo[:, :2] @ np.array([0.5, 0.5]) - 0.5
        matrix = np.hstack([to_photo[:, :2], (to_photo[:, 2] + shift)[:, None]])
        crop = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        if mirror:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop, dtype=np.float32) / 255.0

    def to_photo_index(self, points: np.ndarray, size: int, mirror: bool = False) -> np.ndarray:
        """``(N, 2)`` continuous crop coordinates -> photo pixel indices."""
        points = np.asarray(points, np.float64)[:, :2].copy()
        if mirror:
            points[:, 0] = size - points[:, 0]
        return points @ self.crop_to_photo(size)[:, :2].T + self.crop_to_photo(size)[:, 2] - 0.5

    @classmethod
    def around(cls, points: np.ndarray, first: int, second: int, scale: float) -> "RotatedSquare":
        """The square around ``points`` (photo pixel indices ``(N, 2)``), rotated so that point
        ``first`` -> ``second`` runs along its x axis, its side ``scale`` times the points' extent
        in that rotated frame."""
        points = np.asarray(points, np.float64)[:, :2] + 0.5
        direction = points[second] - points[first]
        angle = float(np.arctan2(direction[1], direction[0]))
        c, s = np.cos(angle), np.sin(angle)
        local = points @ np.array([[c, -s], [s, c]])  # coordinates along the square's axes
        low, high = local.min(axis=0), local.max(axis=0)
        centre_local = (low + high) / 2
        centre = np.array([[c, -s], [s, c]]) @ centre_local
        return cls(centre, float(scale * (high - low).max()), angle)


@dataclass
class FaceCandidate:
    """One BlazeFace detection in photo pixel indices: ``box (4,)`` x0, y0, x1, y1, ``keypoints
    (6, 2)`` (subject's right eye, left eye, nose tip, mouth, right ear, left ear) and
    ``score`` in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass
class DenseLandmarks:
    """478 points of one face.

    Attributes:
        points: ``(478, 2)`` float64 (x, y) photo pixel indices (layout in the module docstring).
        depth: ``(478,)`` relative depth from the networks (photo pixels, smaller is nearer).
        presence: the face mesh's face-presence probability in [0, 1] (the per-face confidence).
        region: the last face region the mesh was predicted in.
    """

    points: np.ndarray
    depth: np.ndarray
    presence: float
    region: RotatedSquare


# -- the networks ------------------------------------------------------------------------------
def litert_available() -> bool:
    """True when a TFLite interpreter (``ai-edge-litert`` or ``tflite-runtime``) is installed."""
    return any(importlib.util.find_spec(name) is not None for name in ("ai_edge_litert", "tflite_runtime"))


@lru_cache(maxsize=None)
def _network(file_name: str):
    """A ready LiteRT interpreter for one of the shipped ``.tflite`` files."""
    path = MODELS_DIR / file_name
    if not path.is_file():
        raise DetectorUnavailableError(None, f"{path} is missing: reinstall flamefit")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise DetectorUnavailableError(
                None, "the mediapipe detector needs the LiteRT interpreter: "
                      "pip install 'flamefit[mediapipe]' (ai-edge-litert), or use --detector dlib"
            ) from None
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter


#: One interpreter per network is shared by every thread (a web server's workers): LiteRT's
#: interpreters are not thread-safe, so each run holds this lock.
_RUN_LOCK = threading.Lock()


def _run(file_name: str, image: np.ndarray) -> list[np.ndarray]:
    """Run a network on one ``(S, S, 3)`` float32 input; its outputs in the file's order."""
    with _RUN_LOCK:
        interpreter = _network(file_name)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"])[0].copy() for d in interpreter.get_output_details()]


# -- 1. faces ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DetectorSpec:
    file_name: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: int  # per stride occurrence


_SHORT_RANGE = _DetectorSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2)
_FULL_RANGE = _DetectorSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1)


@lru_cache(maxsize=None)
def _anchor_centres(spec: _DetectorSpec) -> np.ndarray:
    """``(A, 2)`` anchor centres in [0, 1] (BlazeFace's fixed-size SSD anchors): per stride, a
    grid of cells, each repeated once per anchor; layers of equal stride share the grid."""
    centres = []
    strides = list(spec.strides)
    while strides:
        stride = strides[0]
        repeats = strides.count(stride) * spec.anchors_per_cell
        strides = [s for s in strides if s != stride]
        cells = int(np.ceil(spec.size / stride))
        y, x = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([x.ravel(), y.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres)


def detect_face_candidates(rgb: np.ndarray, min_confidence: float = MIN_DETECTION_CONFIDENCE
                           ) -> list[FaceCandidate]:
    """Faces found by BlazeFace (short range, then full range if none), best first.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB photo.
        min_confidence: detections below this are dropped.
    """
    for spec in (_SHORT_RANGE, _FULL_RANGE):
        found = _blazeface(rgb, spec, min_confidence)
        if found:
            return found
    return []


def _blazeface(rgb: np.ndarray, spec: _DetectorSpec, min_confidence: float) -> list[FaceCandidate]:
    height, width = rgb.shape[:2]
    frame = RotatedSquare(np.array([width / 2, height / 2]), float(max(width, height)))
    image = frame.resample(rgb, spec.size) * 2.0 - 1.0  # BlazeFace takes [-1, 1]
    regressors, scores = _run(spec.file_name, image)
    scores = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0].astype(np.float64), -100, 100)))
    keep = scores >= min_confidence
    if not keep.any():
        return []
    raw, scores = regressors[keep] / spec.size, scores[keep]
    anchors = _anchor_centres(spec)[keep]
    centres = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.hstack([centres - half, centres + half]) * spec.size  # crop coordinates
    keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * spec.size
    candidates = []
    for members in _merge_groups(boxes, scores):
        weights = scores[members] / scores[members].sum()
        box = (boxes[members] * weights[:, None]).sum(axis=0)
        points = (keypoints[members] * weights[:, None, None]).sum(axis=0)
        corners = frame.to_photo_index(box.reshape(2, 2), spec.size)
        candidates.append(FaceCandidate(corners.reshape(4), frame.to_photo_index(points, spec.size),
                                        float(scores[members].max())))
    return candidates


def _merge_groups(boxes: np.ndarray, scores: np.ndarray) -> list[np.ndarray]:
    """Groups of overlapping detections (IoU > :data:`MERGE_IOU` with the group's best), best
    group first."""
    order = list(np.argsort(-scores, kind="stable"))
    groups = []
    while order:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order])
        members = np.array(order)[overlap > MERGE_IOU]
        groups.append(members)
        order = [i for i in order if i not in set(members.tolist())]
    return groups


def box_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` x0, y0, x1, y1 boxes."""
    return float(_iou(np.asarray(first, np.float64), np.asarray(second, np.float64)[None])[0])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=1)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


# -- 2. face mesh, 3. irises -------------------------------------------------------------------
def region_from_candidate(candidate: FaceCandidate) -> RotatedSquare:
    """The face-mesh region of a detection: its box, square, 1.5x, rotated to level the eyes."""
    box = np.asarray(candidate.box, np.float64)
    eyes = candidate.keypoints[:2]
    direction = eyes[1] - eyes[0]
    side = FACE_REGION_SCALE * float((box[2:] - box[:2]).max())
    return RotatedSquare((box[:2] + box[2:]) / 2 + 0.5, side, float(np.arctan2(direction[1], direction[0])))


def region_from_box(box: np.ndarray) -> RotatedSquare:
    """The face-mesh region for a plain face box (another detector's), unrotated."""
    box = np.asarray(box, np.float64)
    return RotatedSquare((box[:2] + box[2:]) / 2 + 0.5, FACE_REGION_SCALE * float((box[2:] - box[:2]).max()))


def region_from_mesh(points: np.ndarray) -> RotatedSquare:
    """The face-mesh region a previous mesh spans (photo pixel indices ``(>=468, 2)``)."""
    return RotatedSquare.around(points[:N_MESH], *ROTATION_POINTS, scale=FACE_REGION_SCALE)


def face_mesh(rgb: np.ndarray, region: RotatedSquare) -> tuple[np.ndarray, float]:
    """468 points in ``region``.

    Returns:
        ``(468, 3)`` x, y photo pixel indices and relative depth (photo pixels), and the
        face-presence probability.
    """
    size = 192
    points, presence = _run("face_landmark.tflite", region.resample(rgb, size))
    points = points.reshape(N_MESH, 3)
    xy = region.to_photo_index(points, size)
    depth = points[:, 2] * region.side / size
    presence = float(1.0 / (1.0 + np.exp(-float(np.ravel(presence)[0]))))
    return np.hstack([xy, depth[:, None]]), presence


def iris_points(rgb: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """``(10, 3)`` both irises (right then left, centre first) from a 468-point mesh, photo
    pixel indices and relative depth."""
    size = 64
    found = []
    for corners, mirror in ((RIGHT_EYE_CORNERS, False), (LEFT_EYE_CORNERS, True)):
        region = RotatedSquare.around(mesh[list(corners), :2], 0, 1, scale=EYE_REGION_SCALE)
        _, iris = _run("iris_landmark.tflite", region.resample(rgb, size, mirror=mirror))
        iris = iris.reshape(5, 3)
        xy = region.to_photo_index(iris, size, mirror=mirror)
        found.append(np.hstack([xy, (iris[:, 2] * region.side / size)[:, None]]))
    return np.concatenate(found)


#: Shifts (fractions of the side) and scales of the extra face regions the mesh is averaged
#: over in the last pass: the network's answer moves by ~1 % of the face with the region, and
#: the mean of a few is steadier than any one.
REGION_JITTER = ((0.0, 0.0, 1.0), (0.03, 0.0, 1.0), (-0.03, 0.0, 1.0), (0.0, 0.03, 1.0),
                 (0.0, -0.03, 1.0), (0.0, 0.0, 0.94), (0.0, 0.0, 1.06))


def jittered(region: RotatedSquare, shift_x: float, shift_y: float, scale: float) -> RotatedSquare:
    """``region`` moved by fractions of its side along its own axes and scaled."""
    c, s = np.cos(region.angle), np.sin(region.angle)
    offset = region.side * (shift_x * np.array([c, s]) + shift_y * np.array([-s, c]))
    return RotatedSquare(region.centre + offset, region.side * scale, region.angle)


def dense_landmarks(rgb: np.ndarray, region: RotatedSquare, passes: int = MESH_PASSES,
                    jitter: tuple = REGION_JITTER) -> DenseLandmarks:
    """478 points of the face in ``region`` (see the module docstring for the steps)."""
    for step in range(passes):
        if step + 1 < passes:
            mesh, presence = face_mesh(rgb, region)
            region = region_from_mesh(mesh)
        else:
            found = [face_mesh(rgb, jittered(region, *j)) for j in (jitter or ((0.0, 0.0, 1.0),))]
            mesh = np.mean([m for m, _ in found], axis=0)
            presence = float(np.mean([p for _, p in found]))
    points = np.vstack([mesh, iris_points(rgb, mesh)])
    return DenseLandmarks(points[:, :2], points[:, 2], presence, region)


# -- 478 -> 68 ---------------------------------------------------------------------------------
#: The 478 -> 68 conversion derived by :mod:`flamefit.fitting.dense_embedding` on renders of the
#: shipped open model (its ``to_68`` array): each iBUG point an affine combination of six dense
#: points.
CONVERSION_FILE = Path(__file__).resolve().parent / "open_model_dense_embedding.npz"


@lru_cache(maxsize=1)
def _to_68() -> np.ndarray:
    try:
        with np.load(CONVERSION_FILE, allow_pickle=False) as data:
            return np.asarray(data["to_68"], np.float64)
    except (OSError, KeyError, ValueError):
        raise DetectorUnavailableError(None, f"{CONVERSION_FILE} is missing or unreadable: "
                                             "reinstall flamefit") from None


def ibug68_from_dense(points: np.ndarray) -> np.ndarray:
    """``(..., 478, 2)`` MediaPipe points -> ``(..., 68, 2)`` iBUG 300-W points (same frame;
    :mod:`flamefit.flame.landmark_sets` order)."""
    return np.einsum("lk,...kc->...lc", _to_68(), np.asarray(points, np.float64))


def snap_contour_to_outline(landmarks: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Move the 17 contour points of ``landmarks (68, 2)`` onto the face's outline in the image:
    the convex hull of the 468 mesh points (on a turned face the far side's mesh border is
    hidden behind the cheek, and the hull follows the cheek as iBUG's contour does). Each point
    goes to the nearest point of the hull. Returns a new ``(68, 2)`` array."""
    hull = cv2.convexHull(np.asarray(dense[:N_MESH], np.float32)).reshape(-1, 2).astype(np.float64)
    start, end = hull, np.roll(hull, -1, axis=0)
    snapped = np.array(landmarks, np.float64, copy=True)
    for index in range(17):
        point = snapped[index]
        edge = end - start
        t = np.clip(((point - start) * edge).sum(1) / np.maximum((edge * edge).sum(1), 1e-12), 0, 1)
        nearest = start + t[:, None] * edge
        snapped[index] = nearest[np.argmin(np.linalg.norm(nearest - point, axis=1))]
    return snapped
