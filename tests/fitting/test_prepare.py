"""``prepare_image`` with given landmarks (no detector): crop size, landmark frames, skin weight,
and the crop's pixels against the photo's, with expectations computed by hand from the crop rule
(square centred on the landmarks' bounding box, side 1.25 x its mean extent)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from flamefit.fitting.prepare import prepare_image


def face_landmarks(left: float, top: float, width: float, height: float) -> np.ndarray:
    """``(68, 2)`` iBUG-ordered landmarks of a schematic frontal face whose bounding box is
    exactly ``[left, left + width] x [top, top + height]``: the jaw's ends touch the sides, the
    chin the bottom and the brows the top."""
    cx = left + width / 2
    t = np.linspace(0.0, np.pi, 17)
    jaw_top, bottom = top + 0.25 * height, top + height
    jaw = np.stack([cx - width / 2 * np.cos(t), jaw_top + (bottom - jaw_top) * np.sin(t)], axis=1)
    brows = np.stack([np.r_[np.linspace(cx - 0.4 * width, cx - 0.1 * width, 5),
                            np.linspace(cx + 0.1 * width, cx + 0.4 * width, 5)], np.full(10, top)], axis=1)
    bridge = np.stack([np.full(4, cx), np.linspace(top + 0.15 * height, top + 0.45 * height, 4)], axis=1)
    nostrils = np.stack([np.linspace(cx - 0.1 * width, cx + 0.1 * width, 5), np.full(5, top + 0.5 * height)],
                        axis=1)

    def ellipse(centre_x, centre_y, rx, ry, n):
        a = np.pi - 2 * np.pi * np.arange(n) / n  # from the left corner, over the top, clockwise
        return np.stack([centre_x + rx * np.cos(a), centre_y - ry * np.sin(a)], axis=1)

    eyes = [ellipse(cx + side * 0.22 * width, top + 0.25 * height, 0.09 * width, 0.04 * height, 6)
            for side in (-1, 1)]
    mouth = [ellipse(cx, top + 0.75 * height, 0.2 * width, 0.07 * height, 12),
             ellipse(cx, top + 0.75 * height, 0.12 * width, 0.05 * height, 8)]
    points = np.concatenate([jaw, brows, bridge, nostrils, *eyes, *mouth])
    assert points.shape == (68, 2)
    return points


def test_schematic_face_has_the_bounding_box_it_was_asked_for():
    points = face_landmarks(100, 60, 60, 68)
    np.testing.assert_allclose(points.min(axis=0), [100, 60], atol=1e-9)
    np.testing.assert_allclose(points.max(axis=0), [160, 128], atol=1e-9)


def ramp_photo(path, width: int = 240, height: int = 200):
    """A photo whose red value is its pixel column and green value its row (blue 128), so any
    resampled pixel says where in the photo it came from (bilinear sampling of a ramp is exact)."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    iio.imwrite(path, np.stack([x, y, np.full_like(x, 128)], axis=-1).astype(np.uint8))
    return path


def save_landmarks(path, points):
    np.save(path, points)
    return path


@pytest.fixture
def ramp_item(tmp_path):
    # box of the landmarks: x 100..160, y 60..128 -> centre (130, 94), side 1.25 * (60 + 68) / 2
    # = 80 -> crop square x 90..170, y 54..134; at resolution 100 the zoom is 100 / 80 = 1.25
    points = face_landmarks(100, 60, 60, 68)
    item = prepare_image(ramp_photo(tmp_path / "ramp.png"), "ramp", resolution=100,
                         landmarks_path=save_landmarks(tmp_path / "ramp.npy", points))
    return item, points


def test_crop_size_and_types(ramp_item):
    item, _ = ramp_item
    assert item.crop.shape == (100, 100, 3) and item.crop.dtype == np.float32
    assert 0.0 <= item.crop.min() and item.crop.max() <= 1.0
    assert item.skin.shape == (100, 100) and item.skin.dtype == np.float32
    assert item.source == "user file" and item.n_faces == 1 and item.name == "ramp"
    assert item.image.scale == 1.0 and item.image.original_size == (200, 240)


def test_crop_square_and_landmarks_in_crop_pixels_by_hand(ramp_item):
    item, points = ramp_item
    np.testing.assert_allclose(item.transform.box, [90, 54, 170, 134], atol=1e-9)
    assert item.transform.zoom == pytest.approx(1.25)
    # the box edge x0 is the crop's outer edge -0.5: u = zoom * (x - x0) - 0.5
    np.testing.assert_allclose(item.landmarks, points, atol=1e-9)
    np.testing.assert_allclose(item.landmarks_crop, 1.25 * (points - [90, 54]) - 0.5, atol=1e-9)
    # the renderer's screen frame puts pixel centres at +0.5
    np.testing.assert_allclose(item.landmarks_screen - item.landmarks_crop, 0.5, atol=0)


def test_crop_pixels_come_from_where_the_transform_says(ramp_item):
    item, _ = ramp_item
    u = np.arange(100)
    # crop pixel u samples the photo at x = x0 + (u + 0.5) / zoom (and the same for rows)
    expected_x = 90 + (u + 0.5) / 1.25
    expected_y = 54 + (u + 0.5) / 1.25
    red, green = item.crop[..., 0] * 255, item.crop[..., 1] * 255
    # OpenCV's bilinear warp quantises sample positions to 1/32 pixel
    np.testing.assert_allclose(red, np.broadcast_to(expected_x[None, :], red.shape), atol=0.04)
    np.testing.assert_allclose(green, np.broadcast_to(expected_y[:, None], green.shape), atol=0.04)
    np.testing.assert_allclose(item.crop[..., 2] * 255, 128, atol=0.01)
    # ... and the transform's inverse says the same
    np.testing.assert_allclose(item.transform.to_image(np.array([[0.0, 0.0], [99.0, 50.0]])),
                               [[90.4, 54.4], [90 + 99.5 / 1.25, 54 + 50.5 / 1.25]], atol=1e-9)


def test_downscaled_photo_keeps_landmarks_in_its_own_pixels(tmp_path):
    # 480 x 400 photo, long side capped at 240: scale 0.5; a point p of the original is at
    # (p + 0.5) * 0.5 - 0.5 in the downscaled pixels (pixel i covers [i - 0.5, i + 0.5])
    x, y = np.meshgrid(np.arange(480), np.arange(400))
    photo = tmp_path / "big.png"
    iio.imwrite(photo, np.stack([x % 256, y % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8))
    points = face_landmarks(200, 120, 120, 136)
    item = prepare_image(photo, "big", resolution=64, max_side=240,
                         landmarks_path=save_landmarks(tmp_path / "big.npy", points))
    assert item.image.scale == 0.5 and item.image.rgb.shape == (200, 240, 3)
    assert item.image.original_size == (400, 480)
    small = (points + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(item.landmarks, small, atol=1e-9)
    # box of the downscaled landmarks: x 99.75..159.75, y 59.75..127.75, side 80, zoom 64 / 80
    np.testing.assert_allclose(item.transform.box, [89.75, 53.75, 169.75, 133.75], atol=1e-9)
    np.testing.assert_allclose(item.landmarks_crop, 0.8 * (small - [89.75, 53.75]) - 0.5, atol=1e-9)


def skin_photo(path, size=(200, 240)):
    """A uniformly skin-coloured photo."""
    iio.imwrite(path, np.broadcast_to(np.array([205, 150, 125], np.uint8), (*size, 3)).copy())
    return path


def test_skin_weight_range_and_where_it_is_zero(tmp_path):
    points = face_landmarks(100, 60, 60, 68)
    item = prepare_image(skin_photo(tmp_path / "skin.png"), "skin", resolution=100,
                         landmarks_path=save_landmarks(tmp_path / "skin.npy", points))
    skin = item.skin
    assert 0.0 <= skin.min() and skin.max() <= 1.0
    to_crop = lambda p: tuple(np.round(1.25 * (np.asarray(p) - [90, 54]) - 0.5).astype(int))  # noqa: E731
    # a cheek: between the eye and the jaw, on the skin colour -> nearly certain skin
    u, v = to_crop([130 - 0.22 * 60, 60 + 0.5 * 68])
    assert skin[v, u] > 0.5
    # the centres of an eye and of the open mouth are excluded (up to the light smoothing of
    # the map); so are the crop's corners, outside the face region
    u, v = to_crop([130 - 0.22 * 60, 60 + 0.25 * 68])
    assert skin[v, u] < 0.05
    u, v = to_crop([130, 60 + 0.75 * 68])
    assert skin[v, u] < 0.05
    assert skin[0, 0] == 0.0 and skin[-1, -1] == 0.0 and skin[-1, 0] == 0.0


def test_skin_weight_is_zero_where_the_crop_leaves_the_photo(tmp_path):
    # the jaw touches the photo's left edge: landmarks x 0..60 -> crop square x -10..70 at zoom
    # 1.25; crop column u samples photo x = -10 + (u + 0.5) / 1.25, left of the photo (x < -0.5
    # by more than a bilinear tap, x < -1) for u <= 10
    points = face_landmarks(0, 60, 60, 68)
    item = prepare_image(skin_photo(tmp_path / "edge.png"), "edge", resolution=100,
                         landmarks_path=save_landmarks(tmp_path / "edge.npy", points))
    np.testing.assert_allclose(item.transform.box, [-10, 54, 70, 134], atol=1e-9)
    assert not item.skin[:, :11].any()
    # while the crop itself is padded by edge replication there (no black band to fit)
    np.testing.assert_allclose(item.crop[:, :11], item.crop[:, 11:12].repeat(11, axis=1), atol=1e-6)
    assert item.skin[:, 11:].any()
