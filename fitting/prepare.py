"""Turn one photo into what the optimiser needs: a square crop, its landmarks and a skin weight.

Every failure is an :class:`flamefit.fitting.errors.InputError` with one readable line, so a batch job can
record it and go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flamefit.fitting.crop import CropTransform, crop_image
from flamefit.fitting.errors import BadMaskError
from flamefit.fitting.image_io import LoadedImage, load_image
from flamefit.renderer.pixel_frames import index_to_screen


@dataclass
class PreparedImage:
    """A photo ready to fit.

    Attributes:
        name: output folder name.
        image: the loaded photo (``rgb (H, W, 3) uint8``, its scale to the original).
        landmarks: ``(68, 2)`` detected (or given) landmarks in ``image.rgb`` pixels.
        crop: ``(R, R, 3)`` float32 crop in [0, 1].
        transform: image pixels <-> crop pixels.
        landmarks_crop: ``(68, 2)`` landmarks in crop pixels.

    Photo, crop and landmark coordinates are pixel indices (pixel ``i`` centred on ``i``, like
    OpenCV and dlib); the renderer and the optimiser use screen coordinates with pixel centres
    at ``i + 0.5``: :attr:`landmarks_screen` is what :func:`flamefit.fitting.optimizer.fit_batch` takes.
        skin: ``(R, R)`` float32 photometric weight (skin probability x inside-photo x user mask).
        source: how the landmarks were obtained (``"dlib-hog"``, ``"user file"``, ...).
        n_faces: faces found in the photo (1 for user landmarks).
        notes: human-readable notes (conversions, several faces, ...).
        init: initial parameter values from ``--init`` (see
            :func:`flamefit.fitting.parameters.load_initialisation`), or the image regressor's
            prediction on a steep profile (``steep_view`` of :func:`prepare_image`), or None.
        dense: ``(478, 2)`` MediaPipe's points in ``image.rgb`` pixels (``--detector
            mediapipe``), or None.
        dense_crop: the same in crop pixels, or None.
    """

    name: str
    image: LoadedImage
    landmarks: np.ndarray
    crop: np.ndarray
    transform: CropTransform
    landmarks_crop: np.ndarray
    skin: np.ndarray
    source: str
    n_faces: int
    notes: list[str] = field(default_factory=list)
    init: dict[str, np.ndarray] | None = None
    dense: np.ndarray | None = None
    dense_crop: np.ndarray | None = None

    @property
    def landmarks_screen(self) -> np.ndarray:
        """``(68, 2)`` landmarks in the renderer's crop screen coordinates (centres at +0.5)."""
        return index_to_screen(self.landmarks_crop)

    @property
    def dense_screen(self) -> np.ndarray | None:
        """``(478, 2)`` dense points in crop screen coordinates, or None."""
        return None if self.dense_crop is None else index_to_screen(self.dense_crop)


def prepare_image(
    path: str | Path,
    name: str,
    resolution: int = 224,
    landmarks_path: str | Path | None = None,
    mask_path: str | Path | None = None,
    detector: str = "auto",
    face_index: int = 0,
    max_side: int = 2048,
    steep_view=None,
) -> PreparedImage:
    """Load, find the face (or read the given landmarks), crop and estimate skin.

    Args:
        path: the photo.
        name: its output folder name.
        resolution: crop side in pixels.
        landmarks_path: user landmarks (68 x 2 pixels of the original photo) instead of detection.
        mask_path: user mask (same size as the photo): multiplies the photometric weight.
        detector: a name of :data:`flamefit.fitting.choices.DETECTORS`.
        face_index: which face when several are found (0 = largest).
        max_side: larger photos are downscaled to this long side (results map back).
        steep_view: ``refine(rgb, landmarks) -> RegressedLandmarks``
            (:func:`flamefit.fitting.profile_landmarks.steep_view_refiner`): on a face
            MediaPipe's mesh doubts (a steep profile), its 68 landmarks and ``init`` replace the
            mesh's points; None keeps the mesh's points (with a note).

    Raises:
        InputError: any problem with the photo, landmarks or mask, with a one-line reason.
    """
    from flamefit.fitting.detect import detect_face
    from flamefit.fitting.skin_mask import skin_probability
    from flamefit.fitting.user_inputs import load_landmarks, load_mask

    image = load_image(path, max_side=max_side)
    notes = list(image.notes)
    height, width = image.rgb.shape[:2]
    original_hw = tuple(image.original_size)
    dense, init = None, None
    if landmarks_path is not None:
        landmarks = image.from_original(load_landmarks(landmarks_path, image_size=original_hw))
        source, n_faces = "user file", 1
    else:
        detection = detect_face(image.rgb, detector=detector, face_index=face_index, path=path,
                                all_profiles=steep_view is not None)
        landmarks, source, n_faces = detection.landmarks, detection.detector, detection.n_faces
        dense = detection.dense
        notes += detection.notes
        if steep_view is not None and detection.steep_view:
            regressed = steep_view(image.rgb, landmarks)
            landmarks, dense, init = regressed.landmarks, None, regressed.start
            source = f"{detection.detector} + image regressor"
            notes.append(f"steep view (face mesh presence {detection.mesh_presence:.2f}): the 68 "
                         f"landmarks are the image regressor's ({len(regressed.moved)} crops, the "
                         f"last moved them {regressed.moved[-1]:.1f} px); the mesh's dense points "
                         "are not used")
    crop, transform = crop_image(image.rgb, landmarks, resolution=resolution)
    landmarks_crop = transform.to_crop(landmarks)
    weight = skin_probability(crop, landmarks_crop) * transform.inside_image_mask((height, width))
    if mask_path is not None:
        import cv2

        user_mask = load_mask(mask_path, image_size=original_hw)
        if not user_mask.any():
            raise BadMaskError(mask_path, "the mask is all black, so no pixel would be fitted; "
                                          "white marks the pixels to use")
        if user_mask.shape != (height, width):
            user_mask = cv2.resize(user_mask, (width, height), interpolation=cv2.INTER_AREA)
        weight = weight * cv2.warpAffine(user_mask, transform.matrix, (resolution, resolution),
                                         flags=cv2.INTER_LINEAR, borderValue=0)
        if not weight.any():
            raise BadMaskError(mask_path, "the mask's white area does not cover the face's skin, so "
                                          "no pixel would be fitted")
    return PreparedImage(
        name=name, image=image, landmarks=landmarks, crop=crop, transform=transform,
        landmarks_crop=landmarks_crop, skin=weight.astype(np.float32), source=source,
        n_faces=n_faces, notes=notes, dense=dense, init=init,
        dense_crop=None if dense is None else transform.to_crop(dense),
    )
