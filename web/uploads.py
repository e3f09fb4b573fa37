"""Checking an uploaded photo before anything else touches it, without FastAPI.

Three checks, cheapest first, each failing with an :class:`UploadError` that carries the HTTP
status and one sentence for the page:

1. **size while streaming** (:func:`save_stream`): the body is written to disk chunk by chunk
   and refused (413) as soon as it passes the limit, so an oversized upload is never read whole
   (Starlette itself sets no limit);
2. **type from the bytes** (:func:`sniff_image_type`): the file's first bytes must be those of a
   JPEG, PNG, WebP, BMP or TIFF (415); the name and the declared content type are ignored;
3. **decoded size from the header** (:func:`check_dimensions`): width x height must be within
   the limit (413) before any pixel is decoded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterable

#: Bytes needed to tell every accepted type apart.
SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageType:
    """An accepted photo type: ``name`` for people, ``media_type`` for HTTP, ``suffix`` for the
    stored file."""

    name: str
    media_type: str
    suffix: str


JPEG = ImageType("JPEG", "image/jpeg", ".jpg")
PNG = ImageType("PNG", "image/png", ".png")
WEBP = ImageType("WebP", "image/webp", ".webp")
BMP = ImageType("BMP", "image/bmp", ".bmp")
TIFF = ImageType("TIFF", "image/tiff", ".tif")
ACCEPTED = (JPEG, PNG, WEBP, BMP, TIFF)


class UploadError(Exception):
    """An upload the server refuses: ``status`` is the HTTP status, the message one plain
    sentence a visitor understands (it never names a server path)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def sniff_image_type(head: bytes) -> ImageType | None:
    """The accepted type whose signature ``head`` (the file's first :data:`SNIFF_BYTES` or
    more bytes) starts with, or None."""
    if head[:3] == b"\xff\xd8\xff":
        return JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:2] == b"BM" and len(head) >= 14:
        return BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    return None


def describe_refused(head: bytes) -> str:
    """The 415 sentence for a file that is not an accepted photo type, guessing what it is."""
    accepted = ", ".join(t.name for t in ACCEPTED[:-1]) + f" or {ACCEPTED[-1].name}"
    if not head:
        return "The file is empty. Choose a photo (" + accepted + ")."
    guess = ""
    if head.startswith(b"%PDF"):
        guess = " It looks like a PDF document."
    elif head[4:8] == b"ftyp":
        guess = " It looks like a HEIC/AVIF photo or a video; save the photo as JPEG first."
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        guess = " It is a GIF; save the photo as JPEG or PNG."
    elif head[:2] == b"PK":
        guess = " It looks like a zip archive."
    else:
        try:
            head.decode("utf-8")
            guess = " It looks like a text file."
        except UnicodeDecodeError:
            pass
    return f"This file is not a photo the server can read ({accepted}).{guess}"


def too_large_message(limit: int) -> str:
    return (f"The file is larger than {limit / 2**20:.0f} MB, the most this server accepts. "
            "Use a smaller photo (a few megapixels is plenty).")


async def save_stream(chunks: AsyncIterable[bytes], path: Path, limit: int) -> tuple[int, bytes]:
    """Write an upload's body to ``path`` (atomically), refusing it once it passes ``limit``.

    Args:
        chunks: the body as it arrives.
        path: the file to create; its folder must exist.
        limit: most bytes accepted.

    Returns:
        ``(size in bytes, the first SNIFF_BYTES bytes)``.

    Raises:
        UploadError: 413 as soon as more than ``limit`` bytes arrived (the rest is never read;
            nothing is left on disk); 400 for an empty body.
    """
    handle, temp = tempfile.mkstemp(prefix=".upload.", suffix=".part", dir=path.parent)
    size, head = 0, b""
    try:
        with os.fdopen(handle, "wb") as stream:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise UploadError(413, too_large_message(limit))
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                stream.write(chunk)
        if size == 0:
            raise UploadError(400, "The upload was empty. Choose a photo and try again.")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return size, head


def check_dimensions(path: Path, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of the photo at ``path`` read from its header only.

    Raises:
        UploadError: 413 when ``width * height > max_pixels``; 422 when the header is unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        width = height = None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadError(422, f"The photo could not be read ({error}). It may be damaged; "
                               "export it again as JPEG or PNG.") from None
    limit_mp = max_pixels / 1e6
    if width is None:
        raise UploadError(413, f"The photo has far more pixels than the {limit_mp:g} megapixels "
                               "this server accepts. Resize it and try again.")
    if width * height > max_pixels:
        raise UploadError(413, f"The photo is {width} x {height} pixels "
                               f"({width * height / 1e6:.1f} megapixels); this server accepts up to "
                               f"{limit_mp:g} megapixels. Resize it and try again.")
    return width, height


def display_name(raw: str | None, limit: int = 80) -> str:
    """A file name as sent by a browser, safe to show and store: only its last path part, only
    printable characters, at most ``limit`` of them. Never used to build a path."""
    from urllib.parse import unquote

    text = unquote(raw or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:limit].strip() or "photo"


def download_stem(name: str) -> str:
    """A file-name stem for downloads made of ``name``'s letters, digits, ``-`` and ``_``."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in stem)
    safe = safe.strip("_")[:40]
    return safe or "head"
