"""``flamefit select``: choose N photos of a dataset for a texture space by stated criteria.

Every photo is measured (:func:`measure_photo`):

* **faces**: detected with every face counted; exactly one is required. With FFHQ's metadata
  landmarks (``landmarks_from_metadata``) nothing is detected and the count is taken as one
  (FFHQ's photos are aligned crops around one face).
* **yaw, pitch** (degrees): the rotation of the open model's mean face that best explains the
  51 inner landmarks (brows, nose, eyes, mouth: the contour slides with the turn) under a
  scaled orthographic camera (least squares, then the nearest rotation), as
  ``R = R_y(yaw) R_x(pitch) R_z(roll)``. No fit and no network: a few microseconds a photo.
* **face size** (pixels of the original photo): the side of the 68 points' box.
* **sharpness**: the variance of the Laplacian of the grey 128 px face crop (0-255 values)
  inside the landmarks' hull: the crop is the size the fit sees, so the figure does not depend
  on the photo's resolution.
* **skin tone**: the individual typology angle ``ITA = atan2(L - 50, b)`` (degrees, CIE Lab)
  of the median skin pixel (skin probability above 0.5 in the face region,
  :func:`flamefit.fitting.skin_mask.skin_probability`), and its band (very light > 55 > light >
  41 > intermediate > 28 > tan > 10 > brown > -30 > dark, Chardon et al. 1991).

Photos passing every threshold are chosen, sharpest first, with ``balance`` in equal shares
per skin band (a band with too few gives its share to the others). Outputs in ``OUT/``:
``selected.txt`` (the ids, one a line: ``--only`` of ``fit`` and ``build-texture-space``),
``selection.csv`` (every photo: measures, chosen or the reason it was not) and
``selection.json`` (criteria, counts per band, reasons).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
import weakref
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from flamefit.scale.datasets import DatasetPhoto
from flamefit.scale.ffhq import metadata_landmarks
from flamefit.scale.reading import read_photo
from flamefit.scale.options import SelectOptions
from flamefit.utils import UsageError, write_json, write_text

#: ITA bands, lightest first: ``(name, lower bound in degrees)``.
ITA_BANDS = (("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0),
             ("brown", -30.0), ("dark", -math.inf))

CROP = 128
COLUMNS = ("id", "input", "chosen", "reason", "n_faces", "yaw", "pitch", "face_px", "sharpness", "ita", "band")


def ita_band(ita: float) -> str:
    """The band of an individual typology angle (degrees)."""
    return next(name for name, lower in ITA_BANDS if ita > lower)


@dataclass
class Measures:
    """One photo's measures (``reason`` empty when it passes every criterion)."""

    id: str
    input: str
    reason: str = ""
    n_faces: int | None = None
    yaw: float | None = None
    pitch: float | None = None
    face_px: float | None = None
    sharpness: float | None = None
    ita: float | None = None
    band: str | None = None
    chosen: bool = False


@dataclass
class Selection:
    """The outcome: ``chosen`` ids in order, every photo's measures, files written."""

    chosen: list[str]
    measures: list[Measures]
    n_photos: int
    files: list[Path] = field(default_factory=list)
    bands: dict[str, dict[str, int]] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'band':<14}{'passed':>8}{'chosen':>8}"]
        lines += [f"{name:<14}{counts['passed']:>8}{counts['chosen']:>8}" for name, counts in self.bands.items()]
        return "\n".join(lines)


class _Measurer:
    """Measures photos with one reference face and one scratch folder (removed with it)."""

    def __init__(self, options: SelectOptions, landmarks_from_metadata: bool):
        self.options, self.landmarks_from_metadata = options, landmarks_from_metadata
        self.reference = reference_landmarks()
        self.scratch = Path(tempfile.mkdtemp(prefix="flamefit-select-"))
        self.close = weakref.finalize(self, shutil.rmtree, self.scratch, True)

    def __call__(self, photo: DatasetPhoto, data: bytes | Exception | None = None) -> Measures:
        """The photo's measures; ``data``: its bytes already read (or why not), else read here."""
        from flamefit.fitting.errors import InputError

        found = Measures(photo.id, photo.source)
        try:
            if isinstance(data, Exception):
                raise data
            self._measure(photo, read_photo(photo) if data is None else data, found)
        except (InputError, OSError, ValueError) as error:
            found.reason = str(error).replace(str(self.scratch / photo.id), photo.source)
        return found

    def _measure(self, photo: DatasetPhoto, data: bytes, found: Measures) -> None:
        import cv2

        from flamefit.fitting.crop import crop_image
        from flamefit.fitting.detect import detect_faces
        from flamefit.fitting.image_io import load_image
        from flamefit.fitting.skin_mask import landmark_face_hull_mask, rgb_to_lab, skin_probability

        options = self.options
        local = self.scratch / f"{photo.id}{photo.suffix}"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        try:
            image = load_image(local)
        finally:
            local.unlink(missing_ok=True)
        if self.landmarks_from_metadata and photo.landmarks is not None:
            height, width = image.original_size
            landmarks = image.from_original(metadata_landmarks(photo, (width, height)))
            found.n_faces = 1
        else:
            faces = detect_faces(image.rgb, detector=options.detector, path=photo.source)
            found.n_faces = len(faces)
            landmarks = faces[0].landmarks
        found.face_px = round(float(np.ptp(landmarks, axis=0).max() / image.scale), 1)
        crop, transform = crop_image(image.rgb, landmarks, resolution=CROP)
        points = transform.to_crop(landmarks)
        found.yaw, found.pitch = head_angles(points, self.reference)
        grey = cv2.cvtColor((np.clip(crop, 0, 1) * 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
        hull = landmark_face_hull_mask(points, (CROP, CROP)) > 0.5
        found.sharpness = round(float(cv2.Laplacian(grey, cv2.CV_32F)[hull].var()), 2)
        skin = skin_probability(crop, points) > 0.5
        if skin.sum() >= 20:
            lab = rgb_to_lab(crop)[skin]
            light, yellow = float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))
            found.ita = round(math.degrees(math.atan2(light - 50.0, yellow)), 2)
            found.band = ita_band(found.ita)
        found.reason = _rejection(found, options)


def reference_landmarks() -> np.ndarray:
    """``(51, 3)`` the open model's mean face's inner landmarks (68-point indices 17-67), model
    space (metres, y up, +z toward the viewer)."""
    import torch

    from flamefit.flame.flame_layer import FLAME
    from flamefit.flame.selection import select_model

    files = select_model(open_model=True)
    flame = FLAME.from_files(files.model, files.landmarks)
    with torch.no_grad():
        out = flame(shape=torch.zeros(1, flame.n_shape), expression=torch.zeros(1, flame.n_expression),
                    pose=torch.zeros(1, 15))
    return out.landmarks[0, INNER].double().numpy()


#: The 68-point indices that do not slide with the head's turn (all but the jaw contour).
INNER = slice(17, 68)


def head_angles(landmarks: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``(yaw, pitch)`` in degrees of a head from its 68 landmarks (image pixels, y down): the
    rotation ``R = R_y(yaw) R_x(pitch) R_z(roll)`` of ``reference`` (:func:`reference_landmarks`)
    whose scaled orthographic projection fits the 51 inner points best (an affine camera by least
    squares, then its nearest scaled rotation)."""
    points = np.asarray(landmarks, dtype=np.float64)[INNER] * np.array([1.0, -1.0])  # y up
    points = points - points.mean(axis=0)
    model = reference - reference.mean(axis=0)
    camera = np.linalg.lstsq(model, points, rcond=None)[0].T  # (2, 3): points ~ model @ camera.T
    u, _, vt = np.linalg.svd(camera, full_matrices=False)
    rows = u @ vt  # the nearest two orthonormal rows
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    yaw = math.degrees(math.atan2(rotation[0, 2], rotation[2, 2]))
    pitch = math.degrees(math.asin(float(np.clip(-rotation[1, 2], -1.0, 1.0))))
    return round(yaw, 2), round(pitch, 2)


def _rejection(found: Measures, options: SelectOptions) -> str:
    """Why a measured photo fails the criteria ("" when it passes)."""
    if found.n_faces != 1:
        return f"{found.n_faces} faces (one is required)"
    if abs(found.yaw) > options.max_yaw:
        return f"yaw {found.yaw:.0f} deg (at most {options.max_yaw:g})"
    if abs(found.pitch) > options.max_pitch:
        return f"pitch {found.pitch:.0f} deg (at most {options.max_pitch:g})"
    if found.face_px < options.min_face:
        return f"face {found.face_px:.0f} px (at least {options.min_face:g})"
    if found.sharpness < options.min_sharpness:
        return f"sharpness {found.sharpness:.1f} (at least {options.min_sharpness:g})"
    if found.ita is None:
        return "too little skin seen to measure the skin tone"
    return ""


def choose(passed: list[Measures], count: int, balance: bool, seed: int) -> list[Measures]:
    """``count`` of the passing photos: the sharpest (ties by a seeded hash of the id), in equal
    shares per skin band when ``balance`` (water-filling: a band with fewer photos than its
    share gives the rest to the others)."""
    def rank(m: Measures):
        return (-m.sharpness, hashlib.sha1(f"{seed}:{m.id}".encode()).hexdigest())

    if not balance:
        return sorted(passed, key=rank)[:count]
    by_band = {name: sorted((m for m in passed if m.band == name), key=rank) for name, _ in ITA_BANDS}
    quota = {name: 0 for name in by_band}
    left = min(count, len(passed))
    while left > 0:
        open_bands = [name for name in by_band if quota[name] < len(by_band[name])]
        share = max(1, left // len(open_bands))
        for name in open_bands:
            take = min(share, len(by_band[name]) - quota[name], left)
            quota[name] += take
            left -= take
            if left == 0:
                break
    return [m for name in by_band for m in by_band[name][:quota[name]]]


class SelectActor:
    """A Ray Data actor: measures batches of photos (:func:`select_photos` with ``--ray``)."""

    def __init__(self, options: SelectOptions, landmarks_from_metadata: bool, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.measurer = _Measurer(options, landmarks_from_metadata)

    def __call__(self, batch: dict) -> dict:
        from flamefit.scale.ray_jobs import pack_rows, unpack_batch

        photos, data = unpack_batch(batch)
        return pack_rows([asdict(self.measurer(photo, content)) for photo, content in zip(photos, data)],
                         tuple(f.name for f in fields(Measures)))


def _from_row(row: dict) -> Measures:
    """A :class:`Measures` back from a Ray row (NaN and "" were None)."""
    found = Measures(**{f.name: row.get(f.name) for f in fields(Measures)})
    found.reason = found.reason or ""
    found.band = found.band or None
    found.n_faces = None if found.n_faces is None else int(found.n_faces)
    return found


def measure_all(photos: list[DatasetPhoto], options: SelectOptions, scale, show_progress: bool) -> list[Measures]:
    """Every photo's measures, in the photos' order: here, or on Ray actors with ``scale.ray``."""
    from flamefit.scale.jobs import Progress

    progress = Progress(len(photos), show_progress)
    progress.bar.set_description("measuring")
    found: dict[str, Measures] = {}
    if scale.ray is None:
        measurer = _Measurer(options, scale.landmarks_from_metadata)
        rows = (measurer(photo) for photo in photos)
    else:
        from flamefit.scale import ray_jobs

        started = ray_jobs.connect(scale)
        rows = (_from_row(row) for row in ray_jobs.run_pool(
            photos, SelectActor, {"options": options, "landmarks_from_metadata": scale.landmarks_from_metadata},
            16, ray_jobs.for_device(scale, "cpu")))  # measuring needs no GPU
    try:
        for measures in rows:
            found[measures.id] = measures
            progress.update("rejected" if measures.reason else "passed")
    finally:
        progress.close()
        if scale.ray is not None:
            ray_jobs.shutdown_if(started)
    return [found[photo.id] for photo in photos]


def select_photos(inputs: list[str | Path], out_dir: str | Path, options: SelectOptions | None = None,
                  scale=None, show_progress: bool = True) -> Selection:
    """Measure every photo of ``inputs`` and choose ``options.count`` (see the module docstring).

    Args:
        scale: :class:`flamefit.scale.options.ScaleOptions`: ``only``, ``landmarks_from_metadata``
            and ``ray`` (the photos measured by a pool of Ray actors).

    Raises:
        UsageError: no photos, metadata landmarks asked for and no FFHQ metadata found, Ray
            missing or unreachable.
    """
    from flamefit.scale.jobs import load_dataset
    from flamefit.scale.options import ScaleOptions

    options = options or SelectOptions()
    scale = scale or ScaleOptions()
    out_dir = Path(out_dir)
    dataset = load_dataset(inputs, scale)
    measures = measure_all(dataset.photos, options, scale, show_progress)
    passed = [m for m in measures if not m.reason]
    chosen = choose(passed, options.count, options.balance, options.seed)
    chosen_ids = {m.id for m in chosen}
    for m in measures:
        m.chosen = m.id in chosen_ids
        if not m.reason and not m.chosen:
            m.reason = "passed, not needed (sharper photos of its band were chosen)"
    selection = Selection([m.id for m in chosen], measures, len(measures))
    selection.bands = {name: {"passed": sum(m.band == name for m in passed),
                              "chosen": sum(m.band == name for m in chosen)} for name, _ in ITA_BANDS}
    selection.files = _write(out_dir, selection, options, dataset)
    return selection


def _write(out_dir: Path, selection: Selection, options: SelectOptions, dataset) -> list[Path]:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for m in selection.measures:
        row = asdict(m)
        writer.writerow({key: "" if row[key] is None else row[key] for key in COLUMNS})
    reasons: dict[str, int] = {}
    for m in selection.measures:
        if not m.chosen:
            key = m.reason.split(" (")[0].split(":")[-1].strip() if m.reason else "?"
            key = "".join(c for c in key if not c.isdigit() and c != "-").strip()
            reasons[key] = reasons.get(key, 0) + 1
    return [
        write_text(out_dir / "selected.txt", "".join(f"{i}\n" for i in selection.chosen)),
        write_text(out_dir / "selection.csv", buffer.getvalue()),
        write_json(out_dir / "selection.json", {
            "criteria": asdict(options), "inputs": dataset.containers, "n_photos": selection.n_photos,
            "n_chosen": len(selection.chosen), "bands": selection.bands,
            "ita_bands": {name: lower for name, lower in ITA_BANDS if lower > -math.inf},
            "not_chosen": reasons}),
    ]
