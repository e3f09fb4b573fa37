"""Dataset readers: photos in folder trees, zip files, webdataset tar shards and parquet files,
under the same ids, read as bytes by whichever process fits them.

Ids
---
A photo's id is its path relative to the container it was found in, without the suffix, by
the rules of :mod:`flamefit.fitting.plan` (:func:`~flamefit.fitting.plan.assign_ids`): FFHQ's
``images1024x1024/00000/00001.png`` given as ``images1024x1024/`` is ``00000/00001``, and so is
the member ``00000/00001.png`` of a zip file, the webdataset sample of key ``00000/00001`` in a
tar shard and the parquet row whose path column holds ``00000/00001.png``. So the same photos
get the same result folders whatever container they come in. An archive member is *named*
``ARCHIVE/member`` (``/data/ffhq.zip/00000/00001.png``): the ``input`` its report records.

Containers
----------
* a **folder** (searched recursively) or image files or glob patterns, as ``flamefit fit`` takes;
  a folder holding no images but ``.zip``/``.tar``/``.parquet`` files is those files;
* a **zip** file: every image member (folders inside kept in the id);
* **tar** shards (``.tar``, also ``.tar.gz``/``.tgz``, read sequentially): webdataset samples,
  one image per key (``KEY.png``/``KEY.jpg`` ...; other members of the sample are ignored);
  uncompressed shards are read at the member's offset, without scanning;
* **parquet** files: one photo per row, its bytes in a binary column (``image``, ``img``,
  ``jpg``, ``png``, ``bytes``...) or a Hugging Face ``image`` struct (``bytes``, ``path``); its
  id from a path or key column (``path``, ``file_name``, ``key``, ``__key__``, ``id`` or the
  struct's ``path``), else ``<file stem>/<row, 6 digits>``. Needs ``pyarrow``.

FFHQ's ``ffhq-dataset-v2.json`` is attached when found (:mod:`flamefit.scale.ffhq`); the bytes
are read by :mod:`flamefit.scale.reading`.
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from flamefit.fitting.plan import IMAGE_SUFFIXES, assign_ids, collect_photos
from flamefit.utils import UsageError

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PARQUET_SUFFIXES = (".parquet",)
IMAGE_COLUMNS = ("image", "img", "jpg", "jpeg", "png", "webp", "image_bytes", "bytes")
ID_COLUMNS = ("path", "file_name", "filename", "file_path", "image_path", "__key__", "key", "id")

KIND_FILE, KIND_ZIP, KIND_TAR, KIND_PARQUET = "file", "zip", "tar", "parquet"


@dataclass
class DatasetPhoto:
    """One photo of a dataset: where its bytes are and which result folder it gets.

    Attributes:
        id: its result folder under ``--out`` (``/``-separated).
        source: what reports name as its input: the file, or ``ARCHIVE/member`` (absolute).
        kind: ``"file"``, ``"zip"``, ``"tar"`` or ``"parquet"``.
        container: the archive or parquet file (absolute), None for a plain file.
        member: the member's name in a zip or tar file.
        offset, size: the member's data in an uncompressed tar file (bytes), else -1.
        row_group, row: the photo's row in a parquet file (row group, row within it), else -1.
        column: the parquet column holding the bytes (``image`` or ``image.bytes``).
        landmarks: ``(68, 2)`` FFHQ metadata landmarks as nested lists, in the pixels of
            ``landmarks_size`` ``(W, H)``, or None.
    """

    id: str
    source: str
    kind: str = KIND_FILE
    container: str | None = None
    member: str | None = None
    offset: int = -1
    size: int = -1
    row_group: int = -1
    row: int = -1
    column: str | None = None
    landmarks: list | None = None
    landmarks_size: list | None = None

    @property
    def suffix(self) -> str:
        """The image suffix its source ends with (``.png`` when it has none)."""
        suffix = PurePosixPath(self.source).suffix.lower()
        return suffix if suffix in IMAGE_SUFFIXES else ".png"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DatasetPhoto":
        return cls(**json.loads(text))


@dataclass
class Dataset:
    """The photos of a run's inputs, in a stable order (by container, then name).

    Attributes:
        photos: the photos, ids unique.
        containers: ``(kind, path)`` of every container read.
        metadata: the FFHQ metadata files found (may be empty).
        n_with_landmarks: photos matched to a metadata entry with landmarks.
    """

    photos: list[DatasetPhoto] = field(default_factory=list)
    containers: list[tuple[str, str]] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    n_with_landmarks: int = 0

    def describe(self) -> str:
        kinds: dict[str, int] = {}
        for kind, _ in self.containers:
            kinds[kind] = kinds.get(kind, 0) + 1
        text = f"{len(self.photos)} photos from " + ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in kinds.items())
        if self.metadata:
            text += f"; FFHQ metadata with landmarks for {self.n_with_landmarks}"
        return text


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in ZIP_SUFFIXES + TAR_SUFFIXES + PARQUET_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def is_container(path: str | Path) -> bool:
    """True for a zip, tar or parquet file name."""
    return _suffix(Path(path)) in ZIP_SUFFIXES + TAR_SUFFIXES + PARQUET_SUFFIXES


def is_dataset_input(entry: str | Path) -> bool:
    """True when ``flamefit fit`` alone cannot read ``entry``: a container file, a glob
    matching containers, or a folder holding containers but no images."""
    text = str(entry)
    path = Path(text)
    if path.is_file():
        return is_container(path)
    if path.is_dir():
        return not _has_images(path) and bool(_containers_in(path))
    if glob.has_magic(text):
        return any(is_container(m) for m in glob.glob(text, recursive=True))
    return False


def _has_images(folder: Path) -> bool:
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith(".") for f in files):
            return True
    return False


def _containers_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_container(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


# -- listing -----------------------------------------------------------------------------------
def open_dataset(inputs: list[str | Path], *, only: str | Path | None = None) -> Dataset:
    """List the photos of ``inputs`` (folders, image files, globs, zip / tar / parquet files).

    Args:
        inputs: what the user gave.
        only: a text file of ids to keep (one a line, ``#`` comments; ``flamefit select``'s
            ``selected.txt``), or None for all.

    Raises:
        UsageError: an input that does not exist or holds no photo, a parquet file without an
            image column, ``only`` naming ids the inputs do not hold.
    """
    dataset = Dataset()
    entries: list[tuple[Path, Path, DatasetPhoto]] = []  # (name, root, photo without id)
    plain: list[str] = []
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_file() and is_container(path):
            containers = [path]
        elif path.is_dir() and is_dataset_input(path):
            containers = _containers_in(path)
        elif glob.has_magic(text) and is_dataset_input(text):
            containers = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if is_container(m)]
        else:
            plain.append(text)
            continue
        for container in containers:
            entries += _list_container(container.absolute())
            dataset.containers.append((_kind(container), str(container.absolute())))
    if plain:
        for photo in collect_photos(plain):
            entries.append((photo.path.absolute(), photo.root.absolute(),
                            DatasetPhoto(id="", source=str(photo.path.absolute()))))
        dataset.containers += [("folder" if Path(p).is_dir() else "file", str(Path(p).absolute())) for p in plain]
    if not entries:
        raise UsageError(f"{' '.join(map(str, inputs))}: no photos found (image files, folders, zip, "
                         "tar or parquet files)")
    ids = assign_ids([(name, root) for name, root, _ in entries])
    for (_, _, photo), named in zip(entries, ids):
        photo.id = named.id
        dataset.photos.append(photo)
    from flamefit.scale.ffhq import attach_metadata

    attach_metadata(dataset, inputs)
    if only is not None:
        dataset.photos = _keep_only(dataset.photos, Path(only))
    return dataset


def _kind(path: Path) -> str:
    suffix = _suffix(path)
    return KIND_ZIP if suffix in ZIP_SUFFIXES else KIND_TAR if suffix in TAR_SUFFIXES else KIND_PARQUET


def _list_container(path: Path) -> list[tuple[Path, Path, DatasetPhoto]]:
    kind = _kind(path)
    try:
        if kind == KIND_ZIP:
            listed = _list_zip(path)
        elif kind == KIND_TAR:
            listed = _list_tar(path)
        else:
            listed = _list_parquet(path)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise UsageError(f"{path}: cannot read this {kind} file ({error})") from None
    if not listed:
        raise UsageError(f"{path}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return listed


def _is_image_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") or part == "__MACOSX" for part in parts))


def _list_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        names = sorted(info.filename for info in archive.infolist()
                       if not info.is_dir() and _is_image_name(info.filename))
    return [(path / name, path, DatasetPhoto(id="", source=str(path / name), kind=KIND_ZIP,
                                             container=str(path), member=name)) for name in names]


def _list_tar(path: Path):
    """Webdataset samples: the first image member of each key (``dir/KEY.ext``, KEY = the name
    up to its first dot)."""
    compressed = _suffix(path) != ".tar"
    samples: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            if not info.isfile() or not _is_image_name(info.name):
                continue
            pure = PurePosixPath(info.name)
            key = str(pure.parent / pure.name.split(".", 1)[0])
            samples.setdefault(key, info)
    listed = []
    for key in sorted(samples):
        info = samples[key]
        name = key + PurePosixPath(info.name).suffix
        listed.append((path / name, path, DatasetPhoto(
            id="", source=str(path / info.name), kind=KIND_TAR, container=str(path), member=info.name,
            offset=-1 if compressed else info.offset_data, size=info.size)))
    return listed


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading parquet files needs pyarrow: pip install 'flamefit[ray]' "
                         "(or pip install pyarrow)") from None
    return pq


def _image_and_id_columns(schema) -> tuple[str, str | None]:
    """``(bytes column, id column or None)`` of a parquet schema (an arrow schema)."""
    import pyarrow as pa

    names = {name.lower(): name for name in schema.names}
    for wanted in IMAGE_COLUMNS:
        name = names.get(wanted)
        if name is None:
            continue
        kind = schema.field(name).type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            id_column = next((names[c] for c in ID_COLUMNS if c in names), None)
            return name, id_column
        if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
            id_column = next((names[c] for c in ID_COLUMNS if c in names), None)
            if id_column is None and kind.get_field_index("path") >= 0:
                id_column = f"{name}.path"
            return f"{name}.bytes", id_column
    raise UsageError(f"no image column: expected a binary column or an image struct with bytes named one of "
                     f"{', '.join(IMAGE_COLUMNS)}; the file has {', '.join(schema.names)}")


def parquet_column(parquet, group: int, column: str):
    """One row group's values of ``column`` (``name`` or ``struct.field``: only that field is read)."""
    values = parquet.read_row_group(group, columns=[column]).column(0)
    if "." in column:
        values = values.combine_chunks().field(column.split(".", 1)[1])
    return values


def _list_parquet(path: Path):
    pq = pyarrow_parquet()
    parquet = pq.ParquetFile(path)
    try:
        column, id_column = _image_and_id_columns(parquet.schema_arrow)
    except UsageError as error:
        raise UsageError(f"{path}: {error}") from None
    listed = []
    for group in range(parquet.num_row_groups):
        n_rows = parquet.metadata.row_group(group).num_rows
        names: list | None = None
        if id_column is not None:
            names = parquet_column(parquet, group, id_column).to_pylist()
        for row in range(n_rows):
            index = len(listed)
            name = names[row] if names is not None and names[row] else f"{path.stem}/{index:06d}"
            name = str(name).lstrip("/")
            listed.append((path / name, path, DatasetPhoto(
                id="", source=str(path / name), kind=KIND_PARQUET, container=str(path),
                row_group=group, row=row, column=column)))
    return listed


def _keep_only(photos: list[DatasetPhoto], listing: Path) -> list[DatasetPhoto]:
    try:
        wanted = [line.split("#", 1)[0].strip() for line in listing.read_text().splitlines()]
    except OSError as error:
        raise UsageError(f"--only {listing}: cannot read it ({error.strerror or error})") from None
    wanted = [w for w in wanted if w]
    by_id = {photo.id: photo for photo in photos}
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise UsageError(f"--only {listing}: {len(missing)} of its {len(wanted)} ids are not in the inputs "
                         f"(first: {', '.join(missing[:3])}); give the inputs the list was made from")
    return [by_id[w] for w in dict.fromkeys(wanted)]
