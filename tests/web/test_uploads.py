"""Upload checks without a server: type from the bytes, size while streaming, pixel limit, names."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from flamefit.web.uploads import (
    ACCEPTED, UploadError, check_dimensions, describe_refused, display_name, download_stem,
    save_stream, sniff_image_type,
)

FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WebP": "WEBP", "BMP": "BMP", "TIFF": "TIFF"}


def encoded(pil_format: str, size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(buffer, format=pil_format)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ACCEPTED, ids=lambda k: k.name)
def test_every_accepted_type_is_recognised_from_its_bytes(kind):
    assert sniff_image_type(encoded(FORMATS[kind.name])[:16]) == kind


@pytest.mark.parametrize("head, guess", [
    (b"%PDF-1.7\n", "PDF"), (b"hello, world", "text file"), (b"GIF89a\x01\x00", "GIF"),
    (b"\x00\x00\x00\x18ftypheic", "HEIC"), (b"PK\x03\x04", "zip"), (b"", "empty"),
])
def test_other_files_are_refused_and_named(head, guess):
    assert sniff_image_type(head) is None
    assert guess in describe_refused(head)


def chunks(sizes, consumed):
    async def generate():
        for size in sizes:
            consumed.append(size)
            yield b"\xab" * size
    return generate()


def test_the_stream_is_cut_off_once_past_the_limit(tmp_path):
    consumed = []
    with pytest.raises(UploadError) as refused:
        asyncio.run(save_stream(chunks([1000] * 100, consumed), tmp_path / "photo", limit=2500))
    assert refused.value.status == 413 and "larger than" in refused.value.message
    assert len(consumed) == 3  # the third chunk crossed the limit; the other 97 were never read
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_a_stream_within_the_limit_is_saved_whole(tmp_path):
    consumed = []
    size, head = asyncio.run(save_stream(chunks([10, 0, 20], consumed), tmp_path / "photo", limit=30))
    assert size == 30 and head == b"\xab" * 16
    assert (tmp_path / "photo").read_bytes() == b"\xab" * 30
    with pytest.raises(UploadError) as empty:
        asyncio.run(save_stream(chunks([], []), tmp_path / "empty", limit=30))
    assert empty.value.status == 400 and not (tmp_path / "empty").exists()


def test_pixel_limit_is_read_from_the_header(tmp_path):
    path = tmp_path / "p.png"
    path.write_bytes(encoded("PNG", size=(400, 300)))
    assert check_dimensions(path, max_pixels=120_000) == (400, 300)
    with pytest.raises(UploadError) as refused:
        check_dimensions(path, max_pixels=119_999)
    assert refused.value.status == 413 and "400 x 300" in refused.value.message


def test_a_damaged_header_is_a_plain_422(tmp_path):
    path = tmp_path / "p.png"
    path.write_bytes(encoded("PNG")[:20])
    with pytest.raises(UploadError) as refused:
        check_dimensions(path, max_pixels=10**6)
    assert refused.value.status == 422 and str(tmp_path) not in refused.value.message


def test_names_from_the_browser_are_display_text_only():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("..%2F..%2Fsecret.png") == "secret.png"
    assert display_name("C:\\Users\\me\\photo.jpg") == "photo.jpg"
    assert display_name("a\x00b\nc.png") == "abc.png"
    assert display_name(None) == "photo" and display_name("/") == "photo"
    assert len(display_name("x" * 500)) == 80
    assert download_stem("../my photo (1).png") == "my_photo__1"
    assert download_stem("Ünïcode.jpg") == "n_code"
    assert download_stem("...") == "head"
