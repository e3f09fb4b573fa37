"""Reading the bytes of dataset photos (:class:`~flamefit.scale.datasets.DatasetPhoto`) in
whichever process works on them: files, zip members, tar members (at their offset in an
uncompressed shard), parquet rows (a row group read once per batch); archives stay open per
process. Also the photos' content hash and their size from the header.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from functools import lru_cache
from pathlib import Path

from flamefit.scale.datasets import (
    KIND_FILE, KIND_PARQUET, KIND_TAR, KIND_ZIP, DatasetPhoto, parquet_column, pyarrow_parquet,
)


@lru_cache(maxsize=16)
def _zip(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


@lru_cache(maxsize=16)
def _parquet(path: str):
    return pyarrow_parquet().ParquetFile(path)


def read_photo(photo: DatasetPhoto, cache: dict | None = None) -> bytes:
    """The photo's bytes (archives stay open per process: a worker reads many members).

    ``cache``: parquet row groups already read (``read_photos`` shares one per batch).

    Raises:
        OSError: the file or member cannot be read (the message names it).
    """
    try:
        if photo.kind == KIND_FILE:
            return Path(photo.source).read_bytes()
        if photo.kind == KIND_ZIP:
            return _zip(photo.container).read(photo.member)
        if photo.kind == KIND_TAR:
            if photo.offset < 0:  # compressed: no offsets, read through the shard
                with tarfile.open(photo.container, "r:*") as archive:
                    return archive.extractfile(photo.member).read()
            with open(photo.container, "rb") as stream:
                stream.seek(photo.offset)
                data = stream.read(photo.size)
            if len(data) != photo.size:
                raise OSError(f"the shard ends inside this member ({len(data)} of {photo.size} bytes)")
            return data
        if photo.kind == KIND_PARQUET:
            return _parquet_bytes(photo, {} if cache is None else cache)
    except (OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise OSError(f"{photo.source}: cannot read it ({error})") from None
    raise OSError(f"{photo.source}: unknown kind {photo.kind!r}")


def _parquet_bytes(photo: DatasetPhoto, cache: dict) -> bytes:
    key = (photo.container, photo.row_group, photo.column)
    if key not in cache:
        cache[key] = parquet_column(_parquet(photo.container), photo.row_group, photo.column)
    value = cache[key][photo.row].as_py()
    if not value:
        raise OSError("the row holds no image bytes")
    return bytes(value)


def read_photos(photos: list[DatasetPhoto]) -> list[bytes | OSError]:
    """Each photo's bytes, or the ``OSError`` saying why not (the others are still read);
    parquet rows of one row group are read with one read."""
    cache: dict = {}
    out: list[bytes | OSError] = []
    for photo in photos:
        try:
            out.append(read_photo(photo, cache))
        except OSError as error:
            out.append(error)
    return out


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a photo's bytes: the same as :func:`flamefit.fitting.results.file_sha256`
    of the photo unpacked, so a result fitted from a folder is resumed from a zip."""
    return hashlib.sha256(data).hexdigest()


def image_size(data: bytes) -> tuple[int, int]:
    """``(W, H)`` of an image's bytes as a viewer shows it (EXIF orientation applied), read
    from its header.

    Raises:
        OSError: not an image Pillow can read.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception as error:
        raise OSError(f"not an image ({error})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
