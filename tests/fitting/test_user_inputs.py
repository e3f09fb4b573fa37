"""load_image on synthetic files for every awkward case, and user landmarks and masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flamefit.fitting.errors import (BadLandmarksError, BadMaskError, ImageTooSmallError, InputError,
                            NotAnImageError)
from flamefit.fitting.image_io import load_image
from flamefit.fitting.user_inputs import check_landmarks, load_landmarks, load_mask, save_pts


def _gradient(height: int = 90, width: int = 120) -> np.ndarray:
    """(H, W, 3) uint8 image whose red channel encodes x and green encodes y."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                     np.full_like(x, 77)], axis=2).astype(np.uint8)


def test_rgb_png_loads_unchanged(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.rgb.dtype == np.uint8 and np.array_equal(loaded.rgb, rgb)
    assert loaded.original_size == (90, 120) and loaded.scale == 1.0 and loaded.notes == []


def test_grayscale_becomes_rgb(tmp_path):
    gray = _gradient()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    loaded = load_image(tmp_path / "g.png")
    assert loaded.rgb.shape == (90, 120, 3)
    assert np.array_equal(loaded.rgb[..., 1], gray) and any("grayscale" in n for n in loaded.notes)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 40:, 3] = 255  # right half opaque red, left half transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    loaded = load_image(tmp_path / "t.png")
    assert np.array_equal(loaded.rgb[0, 0], [255, 255, 255])
    assert np.array_equal(loaded.rgb[0, 79], [200, 0, 0])
    assert "RGBA composited on white" in loaded.notes


def test_palette_with_transparency(tmp_path):
    image = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    image.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.rgb.shape == (90, 120, 3) and any("palette" in n for n in loaded.notes)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_gray_scaled_to_8_bit(tmp_path, suffix):
    values = (np.linspace(0, 65535, 100 * 80).reshape(80, 100)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / f"d.{suffix}")
    loaded = load_image(tmp_path / f"d.{suffix}")
    assert loaded.rgb.dtype == np.uint8
    assert loaded.rgb[0, 0, 0] == 0 and loaded.rgb[-1, -1, 0] == 255
    assert abs(int(loaded.rgb[40, 50, 0]) - round(values[40, 50] / 257)) <= 1
    assert "converted from 16-bit" in loaded.notes


def test_16_bit_rgb_png(tmp_path):
    import cv2

    rgb16 = _gradient().astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "c.png"), rgb16[..., ::-1])  # cv2 writes BGR
    loaded = load_image(tmp_path / "c.png")
    assert np.abs(loaded.rgb.astype(int) - _gradient()).max() <= 1
    assert "converted from 16-bit" in loaded.notes


def test_exif_orientation_applied(tmp_path):
    rgb = _gradient(80, 120)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: the viewer rotates 90 degrees clockwise
    image.save(tmp_path / "r.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.rgb.shape == (120, 80, 3) and loaded.original_size == (120, 80)
    expected = np.rot90(rgb, k=-1)
    assert np.abs(loaded.rgb.astype(int) - expected).mean() < 4
    assert any("EXIF-rotated" in n for n in loaded.notes)


def test_cmyk_jpeg(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "k.jpg", quality=95)
    loaded = load_image(tmp_path / "k.jpg")
    assert loaded.rgb.shape == (90, 120, 3)
    assert np.abs(loaded.rgb.astype(int) - rgb).mean() < 8
    assert "converted from CMYK" in loaded.notes


def test_huge_image_downscaled_with_scale_kept(tmp_path):
    rgb = np.zeros((1500, 3000, 3), np.uint8)
    rgb[600:900, 1200:1800] = 255  # a white block whose corner maps back through the scale
    Image.fromarray(rgb).save(tmp_path / "h.png")
    loaded = load_image(tmp_path / "h.png", max_side=1000)
    assert loaded.rgb.shape == (500, 1000, 3) and loaded.original_size == (1500, 3000)
    assert loaded.scale == pytest.approx(1 / 3)
    rows, cols = np.nonzero(loaded.rgb[..., 0] > 127)
    assert np.allclose(loaded.to_original([cols.min(), rows.min()]), [1200, 600], atol=3)
    assert any("downscaled" in n for n in loaded.notes)


def test_huge_jpeg_uses_reduced_decoding_and_exact_size(tmp_path):
    Image.fromarray(np.full((1200, 2600, 3), 128, np.uint8)).save(tmp_path / "h.jpg")
    loaded = load_image(tmp_path / "h.jpg", max_side=600)
    assert loaded.rgb.shape == (277, 600, 3) and loaded.original_size == (1200, 2600)


def test_tiny_image_refused(tmp_path):
    Image.fromarray(_gradient(40, 50)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageTooSmallError, match="40 px|50x40"):
        load_image(tmp_path / "tiny.png")


def test_text_file_renamed_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
    with pytest.raises(NotAnImageError, match="notes.jpg.*text file"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(_gradient(300, 300)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(NotAnImageError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.jpg")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(NotAnImageError, match="empty"):
        load_image(tmp_path / "empty.png")


# ---------------------------------------------------------------- user landmarks

def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(20, 180, size=(68, 2)).round(3)


def test_landmarks_npy_txt_pts_agree(tmp_path):
    points = _points()
    np.save(tmp_path / "l.npy", points)
    np.savetxt(tmp_path / "l.txt", points)
    save_pts(tmp_path / "l.pts", points)
    for name in ("l.npy", "l.txt", "l.pts"):
        loaded = load_landmarks(tmp_path / name, image_size=(200, 200))
        assert loaded.shape == (68, 2) and np.allclose(loaded, points, atol=1e-3), name


def test_pts_file_in_ibug_layout(tmp_path):
    text = "version: 1\nn_points:  68\n{\n" + "".join(
        f"{x} {y}\n" for x, y in _points()) + "}\n"
    (tmp_path / "face.pts").write_text(text)
    assert np.allclose(load_landmarks(tmp_path / "face.pts"), _points())


def test_landmarks_with_z_and_batch_axis_accepted():
    points = np.concatenate([_points(), np.zeros((68, 1))], axis=1)[None]
    assert check_landmarks(points).shape == (68, 2)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 2)) + np.arange(5)[:, None], "shape"),
    (np.ones((68, 4)), "shape"),
])
def test_landmarks_wrong_shape(tmp_path, bad, message):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(BadLandmarksError, match=message):
        load_landmarks(tmp_path / "bad.npy")


def test_landmarks_nan_and_outside_image(tmp_path):
    points = _points()
    points[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", points)
    with pytest.raises(BadLandmarksError, match="NaN"):
        load_landmarks(tmp_path / "nan.npy")
    with pytest.raises(BadLandmarksError, match="outside the 100x100 image"):
        check_landmarks(_points(), image_size=(100, 100))


def test_pts_count_mismatch_and_garbage(tmp_path):
    (tmp_path / "short.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n3 4\n}\n")
    with pytest.raises(BadLandmarksError, match="n_points: 68 but the file holds 2"):
        load_landmarks(tmp_path / "short.pts")
    (tmp_path / "junk.txt").write_text("hello world\n")
    with pytest.raises(BadLandmarksError, match="line 1"):
        load_landmarks(tmp_path / "junk.txt")


# ---------------------------------------------------------------- user masks

def test_masks_0_255_png_0_1_npy_and_bool(tmp_path):
    mask = np.zeros((60, 80), np.uint8)
    mask[10:30, 20:50] = 1
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    np.save(tmp_path / "m01.npy", mask)
    np.save(tmp_path / "mb.npy", mask.astype(bool))
    Image.fromarray(mask).save(tmp_path / "m01.png")  # 0/1 image: looks black, still valid
    for name in ("m.png", "m01.npy", "mb.npy", "m01.png"):
        loaded = load_mask(tmp_path / name, image_size=(60, 80))
        assert loaded.dtype == np.float32 and np.array_equal(loaded, mask.astype(np.float32)), name


def test_mask_of_wrong_size_names_both_sizes(tmp_path):
    Image.fromarray(np.zeros((50, 70), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(BadMaskError, match="mask is 70x50 but the image is 80x60"):
        load_mask(tmp_path / "m.png", image_size=(60, 80))


def test_unreadable_mask(tmp_path):
    (tmp_path / "m.png").write_text("not a mask")
    with pytest.raises(BadMaskError, match="cannot read"):
        load_mask(tmp_path / "m.png", image_size=(60, 80))
