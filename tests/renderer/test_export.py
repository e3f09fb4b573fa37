"""Export (OBJ/MTL/PNG, PLY, GLB read back with trimesh) and visualisation helpers."""

import logging

import numpy as np
import torch
import trimesh

from flamefit.renderer.export import save_glb, save_obj, save_ply
from flamefit.renderer.primitives import uv_sphere
from flamefit.renderer.visualize import DETECTED_COLOR, FITTED_COLOR, draw_landmarks, make_sheet, overlay, save_animation


def mesh():
    v, f, vt, ft = uv_sphere(6, 8, dtype=torch.float64)
    texture = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    return v.numpy() * 0.1, f.numpy(), vt.numpy(), ft.numpy(), texture


def corners(m):
    return m.vertices[m.faces]


def test_obj_with_mtl_and_texture_round_trips(tmp_path):
    v, f, vt, ft, texture = mesh()
    path = save_obj(tmp_path / "head.obj", v, f, vt, ft, texture)
    text = path.read_text()
    assert "mtllib head.mtl" in text and "usemtl albedo" in text
    assert "map_Kd head.png" in (tmp_path / "head.mtl").read_text()
    assert (tmp_path / "head.png").exists()
    loaded = trimesh.load(path, process=False)
    assert len(loaded.faces) == len(f)
    np.testing.assert_allclose(corners(loaded), v[f], atol=1e-7)
    np.testing.assert_allclose(loaded.visual.uv[loaded.faces], vt[ft], atol=1e-7)
    image = np.asarray(loaded.visual.material.image.convert("RGB"))
    np.testing.assert_array_equal(image, texture)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_ply_round_trips_with_colours(tmp_path):
    v, f, _, _, _ = mesh()
    colors = (np.random.default_rng(1).random(v.shape) * 255).astype(np.uint8)
    loaded = trimesh.load(save_ply(tmp_path / "m.ply", v, f, colors), process=False)
    np.testing.assert_allclose(loaded.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, f)
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], colors)


def test_glb_round_trips_with_uvs(tmp_path):
    v, f, vt, ft, texture = mesh()
    scene = trimesh.load(save_glb(tmp_path / "m.glb", v, f, vt, ft, texture))
    loaded = list(scene.geometry.values())[0]
    np.testing.assert_allclose(corners(loaded), v[f], atol=1e-6)
    np.testing.assert_allclose(loaded.visual.uv[loaded.faces], vt[ft], atol=1e-6)


def test_glb_is_self_contained_with_a_white_non_metallic_material(tmp_path):
    """The texture is embedded in the GLB (nothing next to it) and shown unchanged: base colour
    factor white, metallic 0 (trimesh's 0.4 grey or glTF's metallic 1 make heads render dark)."""
    v, f, vt, ft, texture = mesh()
    path = save_glb(tmp_path / "m.glb", v, f, vt, ft, texture)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb"]
    loaded = list(trimesh.load(path).geometry.values())[0]
    material = loaded.visual.material
    np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), texture)
    np.testing.assert_allclose(np.asarray(material.baseColorFactor, float)[:3], 255)
    assert material.metallicFactor == 0.0 and material.roughnessFactor == 1.0


def test_overlay_and_landmarks_and_sheet():
    render, photo = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    alpha = torch.zeros(1, 1, 4, 4)
    alpha[..., :2, :] = 1
    out = overlay(render, alpha, photo, opacity=0.5)
    assert torch.allclose(out[..., :2, :], torch.tensor(0.5)) and (out[..., 2:, :] == 0).all()

    image = np.zeros((64, 64, 3), np.uint8)
    drawn = draw_landmarks(image, detected=np.array([[10.5, 20.5]]), fitted=np.array([[40.5, 40.5]]))
    assert tuple(drawn[20, 10]) == DETECTED_COLOR
    assert tuple(drawn[40, 40]) == FITTED_COLOR
    assert (image == 0).all()

    sheet = make_sheet([image, drawn, np.zeros((32, 16, 3), np.uint8)], ["photo", "fit", "small"], columns=2)
    assert sheet.shape[1] == 128 and sheet.shape[0] > 128 and sheet.dtype == np.uint8


def test_animation_falls_back_to_gif_without_ffmpeg(tmp_path, caplog):
    frames = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(3)]
    try:
        import imageio_ffmpeg  # noqa: F401
        has_ffmpeg = True
    except ImportError:
        has_ffmpeg = False
    with caplog.at_level(logging.WARNING):
        written = save_animation(frames, tmp_path / "turn.mp4", fps=5)
    assert written.exists()
    if has_ffmpeg:
        assert written.suffix == ".mp4"
    else:
        assert written.suffix == ".gif" and "imageio-ffmpeg" in caplog.text
        import imageio.v2 as imageio
        assert len(imageio.mimread(written)) == 3
