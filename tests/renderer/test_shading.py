"""SH lighting, normals, texture sampling, the composed render."""

import math

import pytest
import torch

from flamefit.renderer.cameras import OrthographicCamera
from flamefit.renderer.interpolate import interpolate
from flamefit.renderer.primitives import uv_sphere
from flamefit.renderer.rasterize import rasterize
from flamefit.renderer.render import render_shape, render_textured
from flamefit.renderer.shading import SH_CONSTANT_FACTORS, constant_light, face_normals, rotate_sh_light, sh_shading, vertex_normals
from flamefit.renderer.texturing import face_corner_uvs, sample_texture


def random_rotation(seed):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def test_constant_factors_are_decas():
    pi = math.pi
    expected = [1 / math.sqrt(4 * pi)] + [(2 * pi / 3) * math.sqrt(3 / (4 * pi))] * 3 \
        + [(pi / 4) * 3 * math.sqrt(5 / (12 * pi))] * 3 \
        + [(pi / 4) * 1.5 * math.sqrt(5 / (12 * pi)), (pi / 4) * 0.5 * math.sqrt(5 / (4 * pi))]
    assert SH_CONSTANT_FACTORS == pytest.approx(expected, rel=1e-15)
    assert SH_CONSTANT_FACTORS[1] == pytest.approx(1.0233267, rel=1e-6)
    # Hand-computed shading for normal +z and a light only in the z and 3z^2-1 terms.
    light = torch.zeros(1, 9, 1, dtype=torch.float64)
    light[0, 3, 0], light[0, 8, 0] = 1.0, 1.0
    n = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    assert sh_shading(n, light).item() == pytest.approx(SH_CONSTANT_FACTORS[3] + 2 * SH_CONSTANT_FACTORS[8])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotating_normals_and_light_together_leaves_shading_unchanged(seed):
    R = random_rotation(seed)
    g = torch.Generator().manual_seed(seed)
    n = torch.nn.functional.normalize(torch.randn(2, 100, 3, generator=g, dtype=torch.float64), dim=-1)
    light = torch.randn(2, 9, 3, generator=g, dtype=torch.float64)
    rotated = rotate_sh_light(light, R)
    torch.testing.assert_close(sh_shading(n @ R.T, rotated), sh_shading(n, light))


def sphere_scene(size=32, dtype=torch.float64):
    v, f, vt, ft = uv_sphere(12, 16, dtype=dtype)
    cam = OrthographicCamera(torch.tensor([[0.8, 0.0, 0.0]], dtype=dtype), (size, size))
    return v[None], f, vt, ft, cam


def test_constant_light_gives_albedo_times_constant():
    v, f, vt, ft, cam = sphere_scene()
    texture = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    out = render_textured(v, cam, f, vt, ft, texture, constant_light(0.8, dtype=torch.float64))
    assert out.alpha.sum() > 100
    torch.testing.assert_close(out.image, out.albedo * 0.8)
    torch.testing.assert_close(out.shading, 0.8 * out.alpha.expand(-1, 3, -1, -1))


def test_rotating_mesh_and_light_about_view_axis_rotates_image():
    v, f, vt, ft, cam = sphere_scene(size=40)
    v = v * torch.tensor([1.0, 0.7, 0.9], dtype=torch.float64)  # break the symmetry
    g = torch.Generator().manual_seed(5)
    light = torch.randn(1, 9, 3, generator=g, dtype=torch.float64)
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # exact 90 deg
    a = render_shape(v, cam, f, light, cull_backfaces=True)
    b = render_shape(v @ Rz.T, cam, f, rotate_sh_light(light, Rz), cull_backfaces=True)
    expected = torch.rot90(a.image, k=1, dims=(2, 3))
    same = (torch.rot90(a.fragments.mask, k=1, dims=(1, 2)) == b.fragments.mask)
    assert same.float().mean() > 0.995
    both = same & b.fragments.mask
    diff = (expected - b.image).abs().amax(1)[both]
    assert diff.max() < 1e-9


def test_normals_point_outward():
    v, f, _, _, _ = sphere_scene()
    n = vertex_normals(v, f)
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(1, v.shape[1], dtype=torch.float64))
    assert ((n * v).sum(-1) > 0.98).all()
    fn = face_normals(v, f)
    assert ((fn * v[:, f].mean(2)).sum(-1) > 0).all()


def test_sample_texture_at_texel_centres_and_midpoints():
    texture = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)  # row 0 = top = v near 1
    r, c = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    uv = torch.stack([(c + 0.5) / 4, 1 - (r + 0.5) / 4], -1)[None].double()
    torch.testing.assert_close(sample_texture(texture, uv)[0, 0], texture[0, 0])
    # Midway between texels (row 0, col 1) and (row 0, col 2), and v = 0 is the bottom row.
    uv2 = torch.tensor([[[[0.5, 1 - 0.125], [0.125, 0.0]]]], dtype=torch.float64)
    torch.testing.assert_close(sample_texture(texture, uv2)[0, 0, 0], torch.tensor([1.5, 12.0], dtype=torch.float64))


def test_seam_uses_each_faces_own_uvs():
    # Two triangles sharing an edge; the shared vertices have different UVs on either side.
    v = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    vt = torch.tensor([[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.6, 0.6], [0.9, 0.6], [0.9, 0.9], [0.6, 0.9]], dtype=torch.float64)
    ft = torch.tensor([[0, 1, 2], [3, 5, 6]])
    texture = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    texture[:, 0, :, :8] = 1.0  # left half (u < 0.5) red
    texture[:, 2, :, 8:] = 1.0  # right half blue
    cam = OrthographicCamera(torch.tensor([[0.9, 0.0, 0.0]], dtype=torch.float64), (24, 24))
    fr = rasterize(cam.project(v), f, (24, 24))
    uv = interpolate(face_corner_uvs(vt, ft), fr, f)
    colour = sample_texture(texture, uv)[0]
    first, second = fr.face_index[0] == 0, fr.face_index[0] == 1
    assert first.sum() > 50 and second.sum() > 50
    one = torch.ones(1, dtype=torch.float64)
    torch.testing.assert_close(colour[0][first], one.expand(int(first.sum())))
    torch.testing.assert_close(colour[2][second], one.expand(int(second.sum())))
    assert (colour[2][first] == 0).all() and (colour[0][second] == 0).all()


def test_region_mask_from_vertex_mask():
    v, f, vt, ft, cam = sphere_scene()
    upper = v[0, :, 1] > 0.3
    out = render_shape(v, cam, f, vertex_masks={"upper": upper, "by_index": torch.nonzero(upper).squeeze(1)})
    m = out.region_masks["upper"]
    assert m.shape == (1, 1, 32, 32) and m.any()
    assert torch.equal(m, out.region_masks["by_index"])
    rows = torch.nonzero(m[0, 0])[:, 0]
    assert rows.max() < 16  # upper half of the image (y down)
    assert not (m & (out.alpha == 0)).any()


def test_render_is_differentiable_in_everything():
    v, f, vt, ft, cam = sphere_scene(dtype=torch.float32)
    v = v.float().requires_grad_(True)
    cam.params.requires_grad_(True)
    texture = torch.rand(1, 3, 8, 8, requires_grad=True)
    light = constant_light(0.7).requires_grad_(True)
    out = render_textured(v, cam, f, vt, ft, texture, light)
    out.image.sum().backward()
    for t in (v, cam.params, texture, light):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_compact_texture_lookup_matches_grid_sample():
    from flamefit.renderer.texturing import sample_texture_covered

    g = torch.Generator().manual_seed(2)
    texture = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    uv = torch.rand(2, 1, 40, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # some outside [0, 1]
    uv.requires_grad_(True)
    weights = torch.rand(2, 3, 1, 40, generator=g, dtype=torch.float64)
    dense = sample_texture(texture, uv)  # (2, 3, 1, 40) via grid_sample
    compact = sample_texture_covered(texture, uv.reshape(-1, 2).T, torch.arange(2).repeat_interleave(40))  # (3, 80)
    torch.testing.assert_close(compact, dense[:, :, 0].permute(1, 0, 2).reshape(3, -1))
    dense_grads = torch.autograd.grad((dense * weights).sum(), (texture, uv))
    compact_grads = torch.autograd.grad((compact * weights[:, :, 0].permute(1, 0, 2).reshape(3, -1)).sum(), (texture, uv))
    for a, b in zip(dense_grads, compact_grads):
        torch.testing.assert_close(a, b)
    shared = sample_texture_covered(texture[:1], uv.reshape(-1, 2).T)  # batch-1 texture for every point
    torch.testing.assert_close(shared[:, :40], compact[:, :40])


def _dense_reference_render(v, cam, f, vt, ft, texture, light):
    """The straightforward formulation on full images: interpolate, grid_sample, SH on images."""
    fr = rasterize(cam.project(v), f, cam.image_size)
    alpha = fr.mask[:, None].to(v.dtype)
    uv = interpolate(face_corner_uvs(vt, ft), fr, f)
    albedo = sample_texture(texture, uv) * alpha
    normals = torch.nn.functional.normalize(interpolate(vertex_normals(v, f), fr, f), dim=-1, eps=1e-12)
    shading = sh_shading(normals, light).permute(0, 3, 1, 2) * alpha
    return albedo * shading, albedo, shading, normals.permute(0, 3, 1, 2) * alpha


@pytest.mark.parametrize("shared_texture", [False, True])
def test_compact_render_matches_dense_reference(shared_texture):
    v, f, vt, ft, cam = sphere_scene(size=40)
    g = torch.Generator().manual_seed(4)
    v = (v * torch.tensor([1.0, 0.8, 0.9], dtype=torch.float64)).repeat(2, 1, 1)
    v = (v + 0.02 * torch.randn(v.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    cam = OrthographicCamera(torch.tensor([[0.8, 0.0, 0.0], [0.7, 0.05, -0.02]], dtype=torch.float64), (40, 40))
    texture = torch.rand(1 if shared_texture else 2, 3, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    light = torch.randn(2, 9, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    target = torch.rand(2, 3, 40, 40, generator=g, dtype=torch.float64)

    out = render_textured(v, cam, f, vt, ft, texture, light)
    expected = _dense_reference_render(v, cam, f, vt, ft, texture, light)
    for got, want in zip((out.image, out.albedo, out.shading, out.normals), expected):
        torch.testing.assert_close(got, want)
    grads = torch.autograd.grad((out.image - target).abs().sum(), (v, texture, light))
    ref_grads = torch.autograd.grad((expected[0] - target).abs().sum(), (v, texture, light))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    alone = render_textured(v[1:], OrthographicCamera(cam.params[1:], (40, 40)), f, vt, ft, texture[-1:], light[1:])
    torch.testing.assert_close(out.image[1:], alone.image)


def test_per_image_light_gpu_layout_matches_per_image_products():
    """The dense batched product the GPU uses for per-image light (renderer.render) gives the
    per-image products' shading and gradients (checked on the CPU in float64)."""
    from flamefit.renderer.render import _apply_light, _apply_light_dense

    v, f, _, _ = uv_sphere(12, 24)
    batch = 3
    offsets = torch.tensor([[20.0, 24.0, 0.0], [40.0, 30.0, 0.0], [30.0, 44.0, 0.0]])
    screen = (v[None] * torch.tensor([14.0, 14.0, 1.0]) + offsets[:, None]).double()
    fragments = rasterize(screen, f, (64, 64))
    assert fragments.pixel_index.numel() > 1000
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(9, fragments.pixel_index.numel(), dtype=torch.float64, generator=generator, requires_grad=True)
    light = torch.randn(batch, 9, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    split, dense = _apply_light(basis, light, fragments), _apply_light_dense(basis, light, fragments)
    torch.testing.assert_close(dense, split, rtol=0, atol=1e-12)
    weights = torch.randn(split.shape, dtype=torch.float64, generator=generator)
    for a, b in zip(torch.autograd.grad((split * weights).sum(), (basis, light)),
                    torch.autograd.grad((dense * weights).sum(), (basis, light))):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
