"""Face detection and 68 facial landmarks (iBUG 300-W layout) in image space.

All boxes and points are in the pixels of the ``rgb`` array given (image space: origin top-left,
x right, y down); boxes are ``(x0, y0, x1, y1)`` with ``x1, y1`` exclusive.

Backends:

* ``"dlib"`` (the default, fully offline): dlib's HOG detector, and its CNN (MMOD) detector as a
  fallback when HOG finds nothing; landmarks from dlib's 68-point shape predictor. The model files
  come from the ``face-recognition-models`` package (``shape_predictor_68_face_landmarks.dat``,
  ``mmod_human_face_detector.dat``); they are located without importing that package (its import
  needs ``pkg_resources``, gone from recent setuptools).
* ``"mediapipe"`` (optional, offline; ``pip install 'flamefit[mediapipe]'``): MediaPipe's
  BlazeFace boxes (dlib's when BlazeFace finds none), its 478 dense points
  (:mod:`flamefit.fitting.mediapipe_detect`) in :attr:`Detection.dense`, and 68 iBUG points
  converted from them (:func:`flamefit.fitting.mediapipe_detect.ibug68_from_dense`). ``"auto"``
  is this one when its interpreter is installed, else ``"dlib"``.
* ``"fan"`` (optional): the FAN landmark network of the ``face-alignment`` package on dlib's
  boxes, used only when its weights are already in the torch hub cache; nothing is downloaded.

Detection policy of the dlib backend:

1. HOG on the image (downscaled to ``max_detection_side`` if larger), without upsampling, then with
   one upsampling step if nothing was found (finds faces down to ~40 px at a cost of 4x);
   detections scoring below ``HOG_MIN_SCORE`` are dropped, and so are those scoring more than
   ``HOG_SCORE_GAP`` below the best one (HOG also fires weakly on badges, logos and skin patches).
2. If HOG finds nothing, the CNN detector runs on a copy resized to ``CNN_WORK_SIDE`` on its long
   side. Its boxes are placed differently from the HOG boxes the shape predictor was trained on;
   :func:`correct_cnn_box` maps them (figures measured on this project's test faces, see there).
3. Faces are ordered largest first (by landmark extent); ``face_index`` picks one, and how many
   were found is kept in :attr:`Detection.n_faces` and a note.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from flamefit.fitting.choices import DETECTORS
from flamefit.fitting.errors import DetectorUnavailableError, FaceTooSmallError, NoFaceError

#: Faces whose landmark extent (the larger of width and height) is below this are refused (px).
MIN_FACE_SIZE = 60

#: HOG detections scoring below this are ignored (dlib's own threshold is 0).
HOG_MIN_SCORE = -0.25
#: HOG detections scoring this much below the best detection of the image are ignored.
HOG_SCORE_GAP = 0.8
#: HOG runs on a copy whose long side is at most this (px); larger photos are downscaled.
MAX_DETECTION_SIDE = 1280
#: A second HOG pass with one upsampling step runs when the image's long side is at most this.
HOG_UPSAMPLE_MAX_SIDE = 1024

#: CNN (MMOD) detections below this confidence are ignored.
CNN_MIN_CONFIDENCE = 0.3
#: The CNN detector runs on a copy resized to this long side (px); it costs ~2 s on 2 cores.
CNN_WORK_SIDE = 480
#: Correction of a CNN box toward the HOG box the shape predictor expects, as fractions of the
#: CNN box width: centre shift right, centre shift down, and the width scale factor. Measured by
#: comparing both detectors' boxes with the landmarks predicted from the HOG box on 40 faces
#: (astronaut and the ten DECA test photos, each mirrored and at two scales); see the module
#: ``correct_cnn_box`` docstring for the figures.
CNN_BOX_SHIFT_X = 0.039
CNN_BOX_SHIFT_Y = 0.082
CNN_BOX_SCALE = 1.034

#: File names of the FAN weights in the torch hub cache (those face-alignment 1.x downloads).
FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"



@dataclass
class Detection:
    """One detected face.

    Attributes:
        box: ``(4,) float64`` face box ``x0, y0, x1, y1`` in pixels of the image given.
        landmarks: ``(68, 2) float64`` (x, y) landmarks in pixels of the image given, iBUG
            300-W order, see :mod:`flamefit.flame.landmark_sets` (jaw 0-16, brows 17-26, nose 27-35,
            eyes 36-47, mouth 48-67).
        score: detector confidence (HOG SVM score or CNN confidence; not comparable across them).
        detector: which detector produced it, e.g. ``"dlib-hog"``, ``"dlib-cnn"``, ``"fan"``,
            ``"mediapipe"``.
        n_faces: how many faces were found in the image.
        notes: human-readable notes, e.g. ``"3 faces found, fitting the largest"``.
        dense: ``(478, 2) float64`` MediaPipe's points (same pixels), or None for other detectors.
        mesh_presence: MediaPipe's face-presence probability of the mesh (None for other
            detectors); below :data:`flamefit.fitting.mediapipe_detect.MIN_PRESENCE` the face
            is a steep view whose points are unreliable (:attr:`steep_view`).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    detector: str
    n_faces: int
    notes: list[str] = field(default_factory=list)
    dense: np.ndarray | None = None
    mesh_presence: float | None = None

    @property
    def steep_view(self) -> bool:
        """MediaPipe's mesh doubts this face (presence below 0.5) while its face detector found
        it confidently: a steep profile, whose mesh points are unreliable."""
        from flamefit.fitting.mediapipe_detect import MIN_PRESENCE

        return self.mesh_presence is not None and self.mesh_presence < MIN_PRESENCE

    @property
    def face_size(self) -> float:
        """The larger of the landmarks' width and height (px)."""
        return float(np.ptp(self.landmarks, axis=0).max())


def detect_face(rgb: np.ndarray, detector: str = "auto", face_index: int = 0,
                min_face_size: float = MIN_FACE_SIZE, path: str | Path | None = None,
                all_profiles: bool = False) -> Detection:
    """Find one face and its 68 landmarks in an image.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB image (image space).
        detector: ``"auto"``, ``"dlib"`` (HOG, CNN fallback, dlib landmarks), ``"mediapipe"``
            (BlazeFace, 478 points and 68 converted; needs ``ai-edge-litert``) or ``"fan"``
            (dlib boxes, FAN landmarks; needs face-alignment and its cached weights).
        face_index: which face to return when there are several, ``0`` being the largest.
        min_face_size: smallest accepted face (landmark extent, px).
        path: the photo's file, only used to name it in error messages.
        all_profiles: also keep the faces MediaPipe's face detector finds confidently but its
            mesh cannot place at all (presence below ``MIN_PROFILE_PRESENCE``, full profiles),
            for a caller that places their points another way
            (:mod:`flamefit.fitting.profile_landmarks`).

    Returns:
        The :class:`Detection`; when several faces were found a note says so.

    Raises:
        NoFaceError: no face found, or ``face_index`` beyond the faces found.
        FaceTooSmallError: the chosen face is smaller than ``min_face_size``.
        DetectorUnavailableError: the FAN backend was asked for but cannot run here.
    """
    faces = detect_faces(rgb, detector=detector, path=path, all_profiles=all_profiles)
    n_faces = len(faces)
    if face_index >= n_faces or face_index < 0:
        raise NoFaceError(path, f"face_index {face_index} asked for but only {n_faces} "
                                f"face{'s' if n_faces != 1 else ''} found; use 0..{n_faces - 1}")
    chosen = faces[face_index]
    if n_faces > 1:
        which = "the largest" if face_index == 0 else f"face {face_index} (0 = largest)"
        chosen.notes.append(f"{n_faces} faces found, fitting {which}")
    if chosen.face_size < min_face_size:
        raise FaceTooSmallError(
            path, f"the face is only {chosen.face_size:.0f} px across; at least "
                  f"{min_face_size:.0f} px are needed: use a higher-resolution photo")
    return chosen


def detect_faces(rgb: np.ndarray, detector: str = "auto", path: str | Path | None = None,
                 all_profiles: bool = False) -> list[Detection]:
    """All faces found in ``rgb`` with their landmarks, largest first (see :func:`detect_face`).

    Raises:
        NoFaceError: nothing that looks like a face was found.
    """
    rgb = _check_rgb(rgb)
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, not {detector!r}")
    detector = resolve_detector(detector)
    if detector == "mediapipe":
        return mediapipe_faces(rgb, path, all_profiles=all_profiles)
    if detector == "fan":
        _fan_weights_path()  # fail early with the clear message, before running dlib
    boxes, scores, name, notes = find_face_boxes(rgb)
    if len(boxes) == 0:
        raise NoFaceError(path, "no face found; use a photo where the face is visible, "
                                "roughly frontal and at least 60 px wide, or pass landmarks")
    if detector == "fan":
        landmarks = fan_landmarks(rgb, boxes)
        name = "fan"
    else:
        landmarks = np.stack([dlib_landmarks(rgb, box) for box in boxes])
    extents = np.ptp(landmarks, axis=1).max(axis=1)
    order = np.argsort(-extents, kind="stable")
    return [Detection(box=boxes[i], landmarks=landmarks[i], score=float(scores[i]),
                      detector=name, n_faces=len(boxes), notes=list(notes)) for i in order]


def resolve_detector(detector: str) -> str:
    """``"auto"`` -> ``"mediapipe"`` when its interpreter is installed, else ``"dlib"``; other
    names unchanged."""
    if detector != "auto":
        return detector
    from flamefit.fitting.mediapipe_detect import litert_available

    return "mediapipe" if litert_available() else "dlib"


def mediapipe_faces(rgb: np.ndarray, path: str | Path | None = None, all_profiles: bool = False
                    ) -> list[Detection]:
    """Faces by MediaPipe: BlazeFace boxes (dlib's when it finds none), 478 points each, 68
    converted from them; faces whose mesh has a presence below 0.5 are dropped unless BlazeFace
    found them confidently (steep profiles, :attr:`Detection.steep_view`) and the presence is
    at least ``MIN_PROFILE_PRESENCE`` or ``all_profiles`` is set. Largest first.

    Raises:
        NoFaceError: no face found.
        DetectorUnavailableError: the LiteRT interpreter is not installed.
    """
    from flamefit.fitting import mediapipe_detect as mp

    notes: list[str] = []
    candidates = mp.detect_face_candidates(rgb)
    regions = [mp.region_from_candidate(c) for c in candidates]
    scores = [c.score for c in candidates]
    name = "mediapipe"
    if not candidates:
        boxes, box_scores, box_name, notes = find_face_boxes(rgb)
        regions = [mp.region_from_box(box) for box in boxes]
        scores = list(box_scores)
        if len(boxes):
            notes.append(f"MediaPipe's face detector found no face; used {box_name} boxes")
    faces = []
    for region, score in zip(regions, scores):
        found = mp.dense_landmarks(rgb, region)
        face_notes = list(notes)
        if found.presence < mp.MIN_PRESENCE:
            # The mesh network doubts steep profiles (presence ~0.02 at 90 degrees of yaw) while
            # BlazeFace still sees them well: trust a confident detection, and say so.
            if not (candidates and score >= mp.CONFIDENT_DETECTION
                    and (all_profiles or found.presence >= mp.MIN_PROFILE_PRESENCE)):
                continue
            face_notes.append(f"the face mesh is unsure of this face (presence {found.presence:.2f}, "
                              f"detection {score:.2f}): a steep profile? its points are less accurate")
        landmarks = mp.snap_contour_to_outline(mp.ibug68_from_dense(found.points), found.points)
        box = np.concatenate([found.points.min(axis=0), found.points.max(axis=0)])
        faces.append(Detection(box=box, landmarks=landmarks, score=float(min(score, found.presence)),
                               detector=name, n_faces=0, notes=face_notes, dense=found.points,
                               mesh_presence=found.presence))
    if not faces:
        raise NoFaceError(path, "no face found; use a photo where the face is visible and at "
                                "least 60 px wide, or pass landmarks")
    faces = _drop_duplicates(faces)
    for face in faces:
        face.n_faces = len(faces)
    return sorted(faces, key=lambda f: -f.face_size)


def _drop_duplicates(faces: list[Detection]) -> list[Detection]:
    """Keep one of detections whose dense points cover the same face (box IoU > 0.5)."""
    from flamefit.fitting.mediapipe_detect import box_iou

    kept: list[Detection] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(box_iou(face.box, other.box) <= 0.5 for other in kept):
            kept.append(face)
    return kept


def find_face_boxes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Face boxes by the dlib detection policy (HOG, then the corrected CNN as fallback).

    Args:
        rgb: ``(H, W, 3) uint8`` RGB image.

    Returns:
        ``boxes (N, 4)`` x0, y0, x1, y1 px in ``rgb``, ``scores (N,)``, the detector name
        (``"dlib-hog"`` or ``"dlib-cnn"``) and notes. ``N`` may be 0.
    """
    notes: list[str] = []
    height, width = rgb.shape[:2]
    long_side = max(height, width)
    factor = min(1.0, MAX_DETECTION_SIDE / long_side)
    work = _resize(rgb, factor)
    for upsample in (0, 1):
        if upsample and max(work.shape[:2]) > HOG_UPSAMPLE_MAX_SIDE:
            break
        boxes, scores = hog_boxes(work, upsample)
        boxes, scores = _keep_confident(boxes, scores)
        if len(boxes):
            return boxes / factor, scores, "dlib-hog", notes
    factor = CNN_WORK_SIDE / long_side
    boxes, scores = cnn_boxes(_resize(rgb, factor))
    keep = scores >= CNN_MIN_CONFIDENCE
    boxes, scores = boxes[keep], scores[keep]
    if len(boxes):
        notes.append("HOG found no face; used the CNN detector")
        boxes = np.stack([correct_cnn_box(box) for box in boxes]) / factor
    return boxes, scores, "dlib-cnn", notes


def hog_boxes(rgb: np.ndarray, upsample: int = 0,
              adjust_threshold: float = HOG_MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Raw dlib HOG detections.

    Returns:
        ``boxes (N, 4) float64`` x0, y0, x1, y1 px in ``rgb`` and ``scores (N,)``.
    """
    rects, scores, _ = _hog_detector().run(rgb, upsample, adjust_threshold)
    boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                     dtype=np.float64).reshape(-1, 4)
    return boxes, np.asarray(scores, dtype=np.float64).reshape(-1)


def cnn_boxes(rgb: np.ndarray, upsample: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw dlib CNN (MMOD) detections, uncorrected (see :func:`correct_cnn_box`).

    Returns:
        ``boxes (N, 4) float64`` x0, y0, x1, y1 px in ``rgb`` and ``confidences (N,)``.
    """
    found = _cnn_detector()(np.ascontiguousarray(rgb), upsample)
    boxes = np.array([[d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1]
                      for d in found], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([d.confidence for d in found], dtype=np.float64)


def correct_cnn_box(box: np.ndarray) -> np.ndarray:
    """Move a dlib CNN (MMOD) box to where the HOG detector would put the same face.

    dlib's 68-point shape predictor was trained on HOG boxes; MMOD boxes sit higher and are
    placed a little differently. Measured on 40 faces where both detectors fire (astronaut and
    the ten DECA test photos, mirrored and at scales 1 and 1.6), in units of the landmark extent
    ``s`` and relative to the landmarks' centroid (medians): HOG box centre ``(-0.002, -0.029) s``,
    width ``1.018 s``; CNN box centre ``(-0.040, -0.110) s``, width ``0.984 s``. So the CNN box
    moves down by 8.2 % and right by 3.9 % of its width and grows by 3.4 %.

    Args:
        box: ``(4,)`` x0, y0, x1, y1 px.

    Returns:
        ``(4,) float64`` corrected box, same space.
    """
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    width, height = x1 - x0, y1 - y0
    centre_x = (x0 + x1) / 2 + CNN_BOX_SHIFT_X * width
    centre_y = (y0 + y1) / 2 + CNN_BOX_SHIFT_Y * width
    half_w, half_h = CNN_BOX_SCALE * width / 2, CNN_BOX_SCALE * height / 2
    return np.array([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h])


def dlib_landmarks(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """68 landmarks from dlib's shape predictor inside ``box`` (x0, y0, x1, y1 px).

    Returns:
        ``(68, 2) float64`` (x, y) px in ``rgb``.
    """
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = _shape_predictor()(rgb, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def fan_landmarks(rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """68 landmarks from the FAN network of ``face-alignment`` for each box.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB image.
        boxes: ``(N, 4)`` x0, y0, x1, y1 px.

    Returns:
        ``(N, 68, 2) float64`` (x, y) px in ``rgb``.

    Raises:
        DetectorUnavailableError: face-alignment or its cached weights are missing.
    """
    model = _fan_model()
    found = model.get_landmarks_from_image(np.ascontiguousarray(rgb),
                                           detected_faces=[list(b) for b in boxes])
    return np.stack([np.asarray(points, dtype=np.float64)[:, :2] for points in found])


def dlib_model_path(file_name: str) -> Path:
    """Path of a model file of the ``face-recognition-models`` package, found without importing it.

    Raises:
        DetectorUnavailableError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise DetectorUnavailableError(None, "the dlib model files are missing: "
                                             "pip install face-recognition-models")
    roots = list(spec.submodule_search_locations or [])
    if spec.origin:
        roots.append(str(Path(spec.origin).parent))
    for root in roots:
        candidate = Path(root) / "models" / file_name
        if candidate.is_file():
            return candidate
    raise DetectorUnavailableError(None, f"{file_name} not found in face-recognition-models; "
                                         "reinstall it: pip install face-recognition-models")


def _fan_weights_path() -> Path:
    """The cached FAN weights, or a clear error; nothing is downloaded."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / FAN_WEIGHTS_FILE
    if not path.is_file():
        raise DetectorUnavailableError(
            None, f"face-alignment weights not found in the torch hub cache ({path.parent}); "
                  "they cannot be downloaded offline: use --detector dlib")
    if importlib.util.find_spec("face_alignment") is None:
        raise DetectorUnavailableError(None, "the FAN detector needs the face-alignment package: "
                                             "pip install face-alignment, or use --detector dlib")
    return path


@lru_cache(maxsize=1)
def _fan_model():
    _fan_weights_path()
    try:
        import face_alignment
    except ImportError as error:
        raise DetectorUnavailableError(None, f"face-alignment cannot be imported ({error}); "
                                             "install what it lacks or use --detector dlib"
                                       ) from None
    return face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device="cpu",
                                        face_detector="folder", flip_input=False, compile=False)


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise DetectorUnavailableError(None, "dlib is not installed: pip install dlib-bin"
                                       ) from None
    return dlib


@lru_cache(maxsize=1)
def _hog_detector():
    return _import_dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def _shape_predictor():
    dlib = _import_dlib()
    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))


@lru_cache(maxsize=1)
def _cnn_detector():
    dlib = _import_dlib()
    return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))


def _keep_confident(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop HOG detections below ``HOG_MIN_SCORE`` or ``HOG_SCORE_GAP`` below the best."""
    if len(scores) == 0:
        return boxes, scores
    keep = (scores >= HOG_MIN_SCORE) & (scores >= scores.max() - HOG_SCORE_GAP)
    return boxes[keep], scores[keep]


def _resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    """``rgb`` scaled by ``factor`` (area filter when shrinking, linear when enlarging)."""
    if abs(factor - 1.0) < 1e-6:
        return np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interpolation)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {rgb.dtype}; use fitting.image_io.load_image")
    return np.ascontiguousarray(rgb)
