"""FFHQ's metadata file, ``ffhq-dataset-v2.json``: its 68 landmarks per photo.

The file (in the folder given, next to an archive, or up to two folders above) is read when
present: each entry's ``image.face_landmarks`` (68 dlib points, pixel indices, in the pixels of
``image.pixel_size``) is matched to a photo of a :class:`~flamefit.scale.datasets.Dataset` by
the last two parts of ``image.file_path`` (``00000/00001.png``), whatever container the photo is
in, so ``--landmarks-from-metadata`` can replace detection.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path, PurePosixPath

from flamefit.utils import UsageError

FFHQ_METADATA = "ffhq-dataset-v2.json"


def find_metadata(inputs: list[str | Path]) -> list[Path]:
    """The ``ffhq-dataset-v2.json`` files for ``inputs``: in a folder given, next to a file
    given, or up to two folders above either."""
    found: dict[str, Path] = {}
    for entry in inputs:
        path = Path(str(entry)).absolute()
        start = path if path.is_dir() else path.parent
        if glob.has_magic(str(entry)):
            start = Path(glob.glob(str(entry))[0]).absolute().parent if glob.glob(str(entry)) else start
        for folder in (start, start.parent, start.parent.parent):
            candidate = folder / FFHQ_METADATA
            if candidate.is_file():
                found[str(candidate)] = candidate
                break
    return list(found.values())


def _match_key(name: str) -> str:
    parts = PurePosixPath(name).parts
    return "/".join(parts[-2:]).lower()


def read_ffhq_landmarks(path: Path) -> dict[str, tuple[list, list]]:
    """``ffhq-dataset-v2.json`` -> ``{last two path parts: (landmarks 68x2, pixel size [W, H])}``.

    Raises:
        UsageError: the file is not FFHQ's metadata.
    """
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot read FFHQ's metadata ({error})") from None
    if isinstance(entries, dict):
        entries = list(entries.values())
    found = {}
    for entry in entries if isinstance(entries, list) else []:
        image = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(image, dict) or "file_path" not in image or "face_landmarks" not in image:
            continue
        found[_match_key(image["file_path"])] = (image["face_landmarks"], image.get("pixel_size", [1024, 1024]))
    return found


def attach_metadata(dataset, inputs: list[str | Path]) -> None:
    """Give the photos of ``dataset`` (a :class:`~flamefit.scale.datasets.Dataset`) their
    metadata landmarks from every metadata file found for ``inputs``."""
    for path in find_metadata(inputs):
        dataset.metadata.append(str(path))
        table = read_ffhq_landmarks(path)
        for photo in dataset.photos:
            hit = table.get(_match_key(photo.source))
            if hit is not None and photo.landmarks is None:
                photo.landmarks, photo.landmarks_size = hit[0], list(hit[1])
    dataset.n_with_landmarks = sum(photo.landmarks is not None for photo in dataset.photos)


def metadata_landmarks(photo, image_size_wh: tuple[int, int]):
    """The metadata landmarks of ``photo`` (a :class:`~flamefit.scale.datasets.DatasetPhoto`):
    ``(68, 2)`` float64 in the pixels of an image of
    ``image_size_wh`` ``(W, H)`` (FFHQ's are for ``pixel_size``; thumbnails scale), or None."""
    import numpy as np

    if photo.landmarks is None:
        return None
    points = np.asarray(photo.landmarks, dtype=np.float64)
    width, height = photo.landmarks_size or image_size_wh
    scale = np.array([image_size_wh[0] / width, image_size_wh[1] / height])
    # pixel-index coordinates: centres at i, so a resize maps p to (p + 0.5) * s - 0.5
    return (points + 0.5) * scale - 0.5
