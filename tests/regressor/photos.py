"""The astronaut photo that ships with scikit-image and its 68 landmarks (detected once by dlib,
saved as a .npy next to a copy of the photo), for tests that need a real face without detecting."""

from __future__ import annotations

from pathlib import Path

_CACHE: dict[str, object] = {}


def astronaut_with_landmarks(folder: Path) -> tuple[Path, Path]:
    import imageio.v3 as iio
    import numpy as np
    import skimage.data

    from flamefit.fitting.detect import detect_face

    if "landmarks" not in _CACHE:
        _CACHE["landmarks"] = detect_face(skimage.data.astronaut(), detector="dlib").landmarks
    photo, landmarks = Path(folder) / "astronaut.png", Path(folder) / "astronaut.npy"
    iio.imwrite(photo, skimage.data.astronaut())
    np.save(landmarks, np.asarray(_CACHE["landmarks"]))
    return photo, landmarks
