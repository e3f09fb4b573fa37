"""Step 1 of a batch fit: which photos, under which ids, with which per-photo inputs, and which of
them a rerun still has to fit.

Photo ids
---------
A photo's id is its path relative to the input it was found through, without the suffix:
``photos/00000/00001.png`` given as ``photos/`` is ``00000/00001`` (nested trees such as FFHQ's
keep their nesting), a file given by name is its stem, a glob's matches are relative to the
glob's fixed leading folders. Path parts are made safe (characters other than letters, digits,
``. _ -`` become ``_``; no part starts with a dot). When two photos of one run would get the
same id, the suffix is kept (``face.png`` vs ``face.jpg``), then parent folders are prefixed,
then a number: two photos never share a result folder, and which folder a photo gets does not
depend on the other photos unless their names collide.

Per-photo inputs
----------------
``--landmarks``, ``--mask`` and ``--init`` are a file for a run of one photo, or a folder
holding ``<id>.<ext>`` per photo (``<id>`` may be nested: ``00000/00001.npy``). One file for a
run of several photos is a usage error, since it would silently apply to all of them. ``--init``
also takes a regressor's output folder (EMOCA, EMICA, MICA): ``FOLDER/<id>/``, or for one photo
``FOLDER`` itself.
"""

from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flamefit.fitting.results import file_sha256, read_report
from flamefit.utils import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}

#: Per-photo input option -> the suffixes looked for in its folder, in order.
SIDE_FILE_SUFFIXES = {
    "landmarks": (".npy", ".txt", ".pts"),
    "mask": (".png", ".jpg", ".npy"),
    "init": (".npz", ".npy", ".pkl", ".pt", ".pth", ".frame"),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Photo:
    """One photo of a run.

    Attributes:
        id: its result folder, relative to the output folder (``/``-separated, safe).
        path: the photo file.
        root: the input (folder, file or glob's fixed part) it was found through.
    """

    id: str
    path: Path
    root: Path


@dataclass
class PlannedPhoto:
    """A photo to fit, with its per-photo input files and its content hash.

    ``source``: what reports and summaries name as the photo's input when ``path`` is a local
    copy (an archive member read by :mod:`flamefit.scale.datasets`, e.g.
    ``/data/ffhq.zip/00000/00001.png``); None when ``path`` is the photo itself."""

    id: str
    path: Path
    sha256: str | None
    landmarks: Path | None = None
    mask: Path | None = None
    init: Path | None = None
    note: str | None = None
    source: str | None = None

    @property
    def input(self) -> Path:
        """The photo as reports name it: ``source`` when set, else ``path``."""
        return Path(self.source) if self.source is not None else self.path

    def named(self, text: str) -> str:
        """``text`` (an error message) naming the photo as reports do: its local copy's path
        replaced by ``source``."""
        return text if self.source is None else text.replace(str(self.path), self.source)


@dataclass
class FitPlan:
    """What a run does: ``todo`` to fit; ``skipped`` ids already done with this very photo;
    ``refused`` id -> reason (a changed photo with ``on_changed="refuse"``, an unreadable one)."""

    todo: list[PlannedPhoto] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: dict[str, tuple[Path, str]] = field(default_factory=dict)


def _safe_part(part: str) -> str:
    part = _UNSAFE.sub("_", part) or "_"
    return "_" + part if part.startswith(".") else part


def _safe_id(parts: tuple[str, ...]) -> str:
    return "/".join(_safe_part(p) for p in parts)


def _glob_root(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _images_under(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; symbolic links to folders are not
    followed (no loops), hidden files and folders are left out."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(current) / f for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def _missing_input_reason(entry: str) -> str:
    path = Path(entry)
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return f"{entry}: is a symbolic link loop (it points back to itself); give the real file or folder"
        return f"{entry}: is a symbolic link to {os.readlink(path)!r}, which does not exist"
    return f"{entry}: no such file or folder, and no file matches it as a pattern"


def collect_photos(inputs: list[str | Path]) -> list[Photo]:
    """Files, folders (searched recursively) and glob patterns -> photos with unique ids.

    Files named explicitly are kept whatever their suffix (a non-image then fails with a clear
    reason); folders and globs contribute files with image suffixes only. A file reached twice
    is kept once.

    Raises:
        UsageError: an input that does not exist, an empty folder, a glob matching no image (each
            named, with what to do).
    """
    photos: list[tuple[Path, Path]] = []  # (path, root)
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_dir():
            images = _images_under(path)
            if not images:
                raise UsageError(f"{text}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            photos += [(image, path) for image in images]
        elif path.is_file():
            photos.append((path, path.parent))
        elif glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            images = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise UsageError(f"{text}: no image file matches this pattern"
                                 + (f" ({len(matches)} other files do)" if matches else ""))
            root = _glob_root(text)
            photos += [(image, root) for image in images]
        else:
            raise UsageError(_missing_input_reason(text))
    unique, seen = [], set()
    for path, root in photos:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, root))
    return assign_ids(unique)


def assign_ids(photos: list[tuple[Path, Path]]) -> list[Photo]:
    """``(path, root)`` pairs -> photos with unique ids by the rules of this module's docstring.

    ``path`` need not exist: an archive member is named ``ARCHIVE/member`` with root
    ``ARCHIVE`` (:mod:`flamefit.scale.datasets`), so it gets the id the same photo gets in an
    unpacked folder."""
    def relative(path: Path, root: Path) -> tuple[str, ...]:
        try:
            return path.relative_to(root).parts
        except ValueError:
            return (path.name,)

    rel = [relative(path, root) for path, root in photos]
    ids = [_safe_id(parts[:-1] + (Path(parts[-1]).stem,)) for parts in rel]

    def clashing(values: list[str]) -> set[int]:
        counts: dict[str, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        return {i for i, value in enumerate(values) if counts[value] > 1}

    for i in clashing(ids):  # face.png and face.jpg: keep the suffix
        ids[i] = _safe_id(rel[i])
    for i in clashing(ids):  # a/face.png and b/face.png given as files: prefix their folder
        parent = photos[i][0].absolute().parent.name or "_"
        ids[i] = _safe_id((parent,) + rel[i][:-1] + (Path(rel[i][-1]).stem,))
    taken = set()
    for i, value in enumerate(ids):
        candidate, n = value, 2
        while candidate in taken:
            candidate, n = f"{value}-{n}", n + 1
        ids[i] = candidate
        taken.add(candidate)
    return [Photo(id=i, path=path, root=root) for i, (path, root) in zip(ids, photos)]


def side_file(option: str, given: Path | None, photo: Photo, n_photos: int) -> Path | None:
    """The ``--<option>`` file of one photo: ``given`` itself for a run of one photo, else
    ``given/<id>.<ext>`` (None when the folder has none for this photo).

    Raises:
        UsageError: ``given`` does not exist, or is one file for a run of several photos.
    """
    if given is None:
        return None
    given = Path(given)
    flag = f"--{option}"
    if given.is_dir():
        found = next((p for s in SIDE_FILE_SUFFIXES[option]
                      if (p := given / f"{photo.id}{s}").is_file()), None)
        if found is None and option == "init":  # a regressor's folder (EMOCA, EMICA, MICA)
            from flamefit.fitting.regressor_outputs import init_folder

            found = init_folder(given, photo.id, n_photos)
        return found
    if not given.exists():
        raise UsageError(f"{flag} {given}: no such file or folder")
    if n_photos > 1:
        raise UsageError(f"{flag} {given} is one file but {n_photos} photos are being fitted; pass a "
                         f"folder holding <id>{SIDE_FILE_SUFFIXES[option][0]} for each photo (ids are "
                         "the photos' paths relative to the folder given, without suffix)")
    return given


def plan_fit(photos: list[Photo], out_dir: Path, *, landmarks: Path | None = None,
             mask: Path | None = None, init: Path | None = None, overwrite: bool = False,
             on_changed: str = "refit") -> FitPlan:
    """Decide what a run fits.

    A photo whose ``OUT/<id>/report.json`` says done is skipped when the report's
    ``input_sha256`` is the photo's; when it differs (another photo of the same id, or the file
    was edited) it is refitted with a note (``on_changed="refit"``) or refused, leaving the old
    result (``"refuse"``). ``overwrite`` refits everything.

    Raises:
        UsageError: a per-photo option that is one file for several photos, or missing; an
            unknown ``on_changed``.
    """
    if on_changed not in ("refit", "refuse"):
        raise UsageError(f"on_changed must be 'refit' or 'refuse', got {on_changed!r}")
    plan = FitPlan()
    n = len(photos)
    for photo in photos:
        files = {option: side_file(option, given, photo, n)
                 for option, given in (("landmarks", landmarks), ("mask", mask), ("init", init))}
        try:
            sha = file_sha256(photo.path)
        except OSError as error:
            plan.refused[photo.id] = (photo.path, f"cannot read the file ({error.strerror or error})")
            continue
        decision, text = resume_decision(out_dir, photo.id, sha, overwrite=overwrite, on_changed=on_changed)
        if decision == SKIP:
            plan.skipped.append(photo.id)
        elif decision == REFUSE:
            plan.refused[photo.id] = (photo.path, text)
        else:
            plan.todo.append(PlannedPhoto(id=photo.id, path=photo.path, sha256=sha, note=text, **files))
    return plan


#: :func:`resume_decision`'s verdicts.
FIT, SKIP, REFUSE = "fit", "skip", "refuse"


def resume_decision(out_dir: Path, photo_id: str, sha256: str, *, overwrite: bool = False,
                    on_changed: str = "refit") -> tuple[str, str | None]:
    """What a run does with one photo of content ``sha256`` given ``OUT/<id>/report.json``:
    ``(SKIP, None)`` done before with this content; ``(FIT, None)`` not done (or ``overwrite``);
    ``(FIT, note)`` done with other content and ``on_changed="refit"``; ``(REFUSE, reason)``
    done with other content and ``on_changed="refuse"``. The one rule of :func:`plan_fit` and
    of the scale-out workers (:mod:`flamefit.scale`), which hash the bytes they read."""
    report = None if overwrite else read_report(Path(out_dir) / photo_id)
    if report is None or report.get("status") != "done":
        return FIT, None
    if report.get("input_sha256") == sha256:
        return SKIP, None
    before = report.get("input", "another file")
    folder = Path(out_dir) / photo_id
    if on_changed == "refuse":
        return REFUSE, (f"{folder} holds the fit of {before}, whose content differs from this photo; "
                        "rerun with --changed-photos refit or --overwrite to replace it, or choose "
                        "another --out")
    return FIT, f"refitted: {folder} held the fit of {before} with other content"
