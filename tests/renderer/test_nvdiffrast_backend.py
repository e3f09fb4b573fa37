"""Agreement with nvdiffrast and backend selection (GPU tests skip without CUDA + nvdiffrast)."""

import pytest
import torch

from flamefit.renderer.cameras import OrthographicCamera, PerspectiveCamera
from flamefit.renderer.nvdiffrast_backend import NvdiffrastUnavailable, fragments_from_rast, load_nvdiffrast, nvdiffrast_available, to_clip_space
from flamefit.renderer.primitives import head_like_mesh
from flamefit.renderer.rasterize import rasterize, resolve_backend

needs_nvdiffrast = pytest.mark.skipif(
    not (torch.cuda.is_available() and nvdiffrast_available()), reason="needs CUDA and nvdiffrast"
)


def test_unknown_backend_and_unavailable_nvdiffrast_give_clear_errors():
    v = torch.rand(1, 3, 3)
    f = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="backend must be one of"):
        rasterize(v, f, (4, 4), backend="opengl")
    with pytest.raises(NvdiffrastUnavailable, match="CUDA"):
        rasterize(v, f, (4, 4), backend="nvdiffrast")  # CPU tensors
    assert resolve_backend("auto", "cpu") == "torch" and resolve_backend("torch", "cuda") == "torch"
    with pytest.raises(NvdiffrastUnavailable, match="CUDA"):
        resolve_backend("nvdiffrast", "cpu")
    auto = rasterize(v, f, (4, 4), backend="auto")  # CPU -> torch
    assert torch.equal(auto.face_index, rasterize(v, f, (4, 4)).face_index)


def test_nvdiffrast_gets_a_context_on_the_tensors_device(monkeypatch):
    """nvdiffrast refuses tensors on another GPU than its context's (e.g. ``--device cuda:1``):
    one context per device, made once (checked with a stand-in nvdiffrast, no GPU needed)."""
    import sys
    import types

    from flamefit.renderer import nvdiffrast_backend

    made = []

    class Context:
        def __init__(self, device):
            self.device = device
            made.append(self)

    fake = types.ModuleType("nvdiffrast.torch")
    fake.RasterizeCudaContext = Context
    monkeypatch.setitem(sys.modules, "nvdiffrast", types.ModuleType("nvdiffrast"))
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", fake)
    monkeypatch.setattr(nvdiffrast_backend, "_STATE", {})
    monkeypatch.setattr(nvdiffrast_backend, "_plugin_build_directory", lambda dr: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    nvdiffrast_backend.require_nvdiffrast(torch.device("cuda:1"))  # what rasterize(backend="nvdiffrast") does
    _, on_1 = nvdiffrast_backend.load_nvdiffrast(torch.device("cuda", 1))
    _, current = nvdiffrast_backend.load_nvdiffrast()
    assert on_1.device == 1 and current.device == 0
    assert nvdiffrast_backend.load_nvdiffrast("cuda:0")[1] is current
    assert len(made) == 2


def _scene(camera_kind, device):
    v, f, _, _ = head_like_mesh(4000)
    v = v[None].to(device).repeat(2, 1, 1)
    v[1] = v[1] * 1.1 + 0.01
    if camera_kind == "orthographic":
        cam = OrthographicCamera(torch.tensor([[7.0, 0.0, 0.0], [6.0, 0.01, -0.01]], device=device), (224, 224))
    else:
        cam = PerspectiveCamera.in_front(2, (224, 224), distance=1.2, device=device)
    return cam.project(v), f.to(device), cam


@needs_nvdiffrast
@pytest.mark.gpu
@pytest.mark.parametrize("camera_kind", ["orthographic", "perspective"])
@pytest.mark.parametrize("cull", [False, True])
def test_nvdiffrast_agrees_with_torch_backend(camera_kind, cull):
    screen, f, cam = _scene(camera_kind, "cuda")
    persp = cam.is_perspective
    ours = rasterize(screen, f, (224, 224), cull_backfaces=cull, perspective_correct=persp, near=cam.near)
    theirs = rasterize(screen, f, (224, 224), cull_backfaces=cull, perspective_correct=persp, near=cam.near, backend="nvdiffrast")
    differ = (ours.face_index != theirs.face_index).float().mean().item()
    assert differ < 0.005  # only pixel centres on shared edges may be assigned differently
    same = ours.mask & (ours.face_index == theirs.face_index)
    torch.testing.assert_close(ours.bary[same], theirs.bary[same])
    # nvdiffrast's own barycentrics, converted, agree with ours at the same pixels.
    dr, context = load_nvdiffrast()
    clip = to_clip_space(screen, (224, 224), persp, cam.near)
    rast, _ = dr.rasterize(context, clip.contiguous(), f.int(), (224, 224))
    native = fragments_from_rast(rast, (224, 224))
    agree = same & (native.face_index == ours.face_index)
    if not cull:
        assert agree.float().sum() > 0.99 * same.float().sum()
        torch.testing.assert_close(native.bary[agree], ours.bary[agree], atol=2e-3, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_torch_backend_same_on_cuda_and_cpu():
    screen, f, cam = _scene("orthographic", "cpu")
    cpu = rasterize(screen, f, (224, 224))
    gpu = rasterize(screen.cuda(), f.cuda(), (224, 224))
    assert (cpu.face_index != gpu.face_index.cpu()).float().mean() < 1e-3
