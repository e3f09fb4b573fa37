"""Unwrapping fitted photos into UV albedo: de-lighting, re-rendering, completion of unseen texels."""

from __future__ import annotations

import pytest
import torch

from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import random_parameters
from flamefit.flame.selection import files_in
from flamefit.texture_space.evaluation import completion_errors
from flamefit.texture_space.unwrap import texel_surface, unwrap_photos

UV = 64
CROP = 160


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unwrapped(demo_head_dir):
    """Eight renders of the demo head (its own albedo space, coloured light) unwrapped with the
    true parameters."""
    scene = HeadScene.from_model_files(files_in(demo_head_dir, kind="test"), texture_resolution=UV)
    generator = torch.Generator().manual_seed(0)
    truth = random_parameters(scene, 8, generator, spread=0.7)
    truth.light[:, 0] *= torch.tensor([1.3, 1.0, 0.7])  # a warm light: de-lighting must undo it per channel
    with torch.no_grad():
        rendered = scene.render(truth, CROP)
    weights = torch.ones(8, 1, CROP, CROP)
    surface = texel_surface(scene.vt, scene.ft, UV)
    result = unwrap_photos(scene, truth, rendered.image, weights, surface)
    true_albedo = scene.albedo(truth.texture).permute(0, 2, 3, 1)
    return scene, truth, rendered, result, true_albedo


def test_delighting_inverts_the_known_sh_shading(unwrapped):
    _, _, _, result, true_albedo = unwrapped
    seen = result.confidence > 0
    assert 0.25 < seen.float().mean().item() < 0.7  # a frontal face sees part of the atlas
    error = (result.albedo - true_albedo).abs()[seen]
    raw_error = (result.colour - true_albedo).abs()[seen]
    # measured: median 0.0004, mean 0.006 (silhouette and seam texels), raw colour 0.24
    assert error.median().item() < 0.003
    assert error.mean().item() < 0.015
    assert raw_error.mean().item() > 0.1
    # de-lit albedo times the fitted shading is the sampled colour again (where not clipped at 1)
    unclipped = seen & (result.albedo.amax(dim=-1) < 0.999)
    lit = (result.albedo * result.shading)[unclipped]
    assert torch.allclose(lit, result.colour[unclipped], atol=2e-3)


def test_unwrap_then_render_reproduces_the_photo_on_visible_skin(unwrapped):
    from flamefit.renderer.render import render_textured
    from flamefit.renderer.shading import constant_light

    scene, truth, rendered, result, _ = unwrapped
    offset = result.albedo.permute(0, 3, 1, 2) - scene.albedo(truth.texture)
    with torch.no_grad():
        again = scene.render(truth, CROP, texture_offset=offset)
        vertices = rendered.vertices
        seen_map = (result.confidence > 0).float()[:, None].expand(-1, 3, -1, -1)
        support = render_textured(vertices, scene.camera(truth, CROP), scene.flame.faces, scene.vt, scene.ft,
                                  seen_map, constant_light(1.0, 8)).image[:, 0]
    pixels = (support > 0.999) & (rendered.alpha[:, 0] > 0)
    assert pixels.float().sum().item() > 8 * 1000
    error = (again.image - rendered.image).abs().permute(0, 2, 3, 1)[pixels]
    # measured: mean 0.0016, 99th percentile 0.03
    assert error.mean().item() < 0.006
    assert torch.quantile(error.amax(dim=1), 0.99).item() < 0.06


def test_back_faces_and_occluded_texels_are_not_seen(unwrapped):
    scene, truth, _, result, _ = unwrapped
    surface = texel_surface(scene.vt, scene.ft, UV)
    flipped = truth.detach()
    flipped.pose[:, 1] += torch.pi  # the back of the head faces the camera
    with torch.no_grad():
        image = scene.render(flipped, CROP).image
    behind = unwrap_photos(scene, flipped, image, torch.ones(8, 1, CROP, CROP), surface)
    front_seen = result.confidence > 0
    assert ((behind.confidence > 0) & front_seen).float().sum() < 0.02 * front_seen.float().sum()


def test_skin_weight_limits_the_texels(unwrapped):
    scene, truth, rendered, result, _ = unwrapped
    surface = texel_surface(scene.vt, scene.ft, UV)
    weights = torch.ones(8, 1, CROP, CROP)
    weights[..., : CROP // 2] = 0  # left half of every crop masked out
    half = unwrap_photos(scene, truth, rendered.image, weights, surface)
    assert (half.confidence > 0).float().sum() < 0.7 * (result.confidence > 0).float().sum()
    assert ((half.confidence > 0) & ~(result.confidence > 0)).sum() == 0


def test_completion_beats_mean_fill_on_hidden_texels(unwrapped):
    _, _, _, result, _ = unwrapped
    maps = result.albedo.numpy()
    confidence = result.confidence.numpy()
    errors = completion_errors(maps, confidence, ["mean", "pca", "inpaint", "combined"], fraction=0.2, blob_size=2.0)
    print("completion RMSE on hidden visible texels:", errors)
    assert errors["combined"] < errors["mean"]
    assert errors["pca"] < errors["mean"]
