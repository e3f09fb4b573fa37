"""Optional nvdiffrast visibility pass (CUDA only).

nvdiffrast (PyPI ``diffrp-nvdiffrast``, imported as ``nvdiffrast.torch``) JIT-compiles a CUDA
plugin on first use. With torch >= 2.11 that plugin is not importable until its build
directory is on ``sys.path``; :func:`load_nvdiffrast` puts it there before building/importing.

How our screen space maps to nvdiffrast's clip space (``pos (B, V, 4)``):

* ``x_ndc = 2 px / W - 1``, ``y_ndc = 2 py / H - 1``: nvdiffrast writes row 0 of its output at
  ``y_ndc = -1``, so rows come out top-down as in our screen space, and its pixel centres
  ``(i + 0.5)`` coincide with ours.
* orthographic (``perspective_correct=False``): ``w = 1``, ``z_ndc`` = depth mapped affinely
  from the batch element's [min, max] depth to [-0.99, 0.99];
* perspective: ``w = z_cam`` and an OpenGL-style ``z_clip = ((f + n) z - 2 f n) / (f - n)``
  with ``n, f`` just inside/outside the element's depth range, so the depth test orders by
  ``z_cam``.

Triangles that our rasteriser would drop (:func:`flamefit.renderer.triangles.drawable_triangles`:
back faces when culling, zero area, non-finite corners, any corner at ``z_cam <= near``) are collapsed onto a point outside the view volume,
so nvdiffrast draws nothing for them (our rasteriser drops a triangle crossing the near plane
whole, nvdiffrast would clip it; collapsing keeps the two identical). To do that per batch
element the triangles are drawn from unshared corners (``3 F`` vertices).

Only the visibility (``triangle_id``) is taken from nvdiffrast; barycentrics and depth are then
recomputed by :func:`flamefit.renderer.rasterize.fragments_from_face_index`, so gradients are the same as
with the torch backend. :func:`fragments_from_rast` converts nvdiffrast's own ``(u, v, z/w, id)``
output for comparison.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys

import torch

from flamefit.renderer.device_constants import device_constant
from flamefit.renderer.fragments import Fragments
from flamefit.renderer.triangles import drawable_triangles, gather_corners

__all__ = [
    "NvdiffrastUnavailable",
    "nvdiffrast_available",
    "require_nvdiffrast",
    "load_nvdiffrast",
    "to_clip_space",
    "rasterize_visibility_nvdiffrast",
    "fragments_from_rast",
]

log = logging.getLogger(__name__)

_STATE: dict[str, object] = {}


class NvdiffrastUnavailable(RuntimeError):
    """nvdiffrast was requested but cannot be used here."""


def _plugin_build_directory(dr_module) -> str | None:
    """The torch-extensions build directory nvdiffrast's JIT plugin lives in."""
    import torch.utils.cpp_extension as cpp_extension

    nvdiffrast = importlib.import_module("nvdiffrast")
    name = "nvdiffrast_plugin_%s_torch%s" % (getattr(nvdiffrast, "__version__", ""), torch.__version__)
    name = re.sub(r"\W|^(?=\d)", "_", name)
    try:
        return cpp_extension._get_build_directory(name, False)
    except Exception:  # noqa: BLE001 - a private helper; absence only disables the workaround
        return None


def _cuda_index(device) -> int:
    device = torch.device("cuda" if device is None else device)
    return torch.cuda.current_device() if device.index is None else device.index


def load_nvdiffrast(device=None):
    """Import ``nvdiffrast.torch``, make its plugin importable, and build its CUDA context.

    Args:
        device: the CUDA device the context is for (default: the current one). nvdiffrast
            refuses tensors on another device than its context's, so each device gets its own.

    Returns:
        ``(nvdiffrast.torch module, RasterizeCudaContext on that device)``.

    Raises:
        NvdiffrastUnavailable: with the reason (not installed, no CUDA, plugin build failed).
    """
    if "error" in _STATE:
        raise NvdiffrastUnavailable(str(_STATE["error"]))
    if "module" not in _STATE:
        _load_module(device)
    dr, contexts = _STATE["module"], _STATE["contexts"]
    index = _cuda_index(device)
    if index not in contexts:
        contexts[index] = dr.RasterizeCudaContext(device=index)
    return dr, contexts[index]


def _load_module(device) -> None:
    """Import nvdiffrast and build its plugin with a first context on ``device``; a failure is
    remembered and raised again on every later call."""
    try:
        if not torch.cuda.is_available():
            raise NvdiffrastUnavailable("nvdiffrast needs CUDA, and torch.cuda.is_available() is False")
        try:
            dr = importlib.import_module("nvdiffrast.torch")
        except ImportError as exc:
            raise NvdiffrastUnavailable(
                f"nvdiffrast is not installed ({exc}); install it with `pip install diffrp-nvdiffrast` "
                "or use backend='torch'"
            ) from exc
        build_dir = _plugin_build_directory(dr)
        if build_dir and build_dir not in sys.path:
            sys.path.insert(0, build_dir)
        try:
            index = _cuda_index(device)
            context = dr.RasterizeCudaContext(device=index)
        except Exception as exc:  # noqa: BLE001 - JIT build/import errors come in many types
            raise NvdiffrastUnavailable(
                f"nvdiffrast's CUDA plugin could not be built or imported ({type(exc).__name__}: {exc}); "
                "it needs a CUDA toolkit (nvcc) matching torch; use backend='torch' meanwhile"
            ) from exc
    except NvdiffrastUnavailable as exc:
        _STATE["error"] = str(exc)
        raise
    _STATE["module"], _STATE["contexts"] = dr, {index: context}
    log.info("nvdiffrast loaded (plugin directory %s)", build_dir)


def nvdiffrast_available(device=None) -> bool:
    """True when nvdiffrast can rasterise here (installed, CUDA present, plugin loads), on
    ``device`` (default: the current CUDA device)."""
    if importlib.util.find_spec("nvdiffrast") is None or not torch.cuda.is_available():
        return False
    try:
        load_nvdiffrast(device)
    except NvdiffrastUnavailable:
        return False
    return True


def require_nvdiffrast(device: torch.device) -> None:
    """Raise :class:`NvdiffrastUnavailable` unless nvdiffrast can rasterise tensors on ``device``."""
    if torch.device(device).type != "cuda":
        raise NvdiffrastUnavailable(
            f"backend='nvdiffrast' needs CUDA tensors, got tensors on {device}; move them to CUDA or use backend='torch'"
        )
    load_nvdiffrast(device)


def to_clip_space(
    vertices_screen: torch.Tensor, image_size: tuple[int, int], perspective_correct: bool, near: float
) -> torch.Tensor:
    """``(B, V, 3)`` screen space -> ``(B, V, 4)`` nvdiffrast clip space (see module docstring)."""
    height, width = image_size
    px, py, depth = vertices_screen.unbind(-1)
    x_ndc = 2.0 * px / width - 1.0
    y_ndc = 2.0 * py / height - 1.0
    finite = torch.isfinite(depth)
    if perspective_correct:
        usable = finite & (depth > near)
        big = torch.finfo(depth.dtype).max
        n = torch.where(usable, depth, torch.full_like(depth, big)).amin(dim=1, keepdim=True)
        f = torch.where(usable, depth, torch.full_like(depth, -big)).amax(dim=1, keepdim=True)
        n = torch.where(torch.isfinite(n) & (n < big), n, torch.ones_like(n)) * 0.99
        f = torch.where(f > n, f, n * 2.0 + 1.0) * 1.01
        w = depth
        z_clip = ((f + n) * depth - 2.0 * f * n) / (f - n)
        return torch.stack([x_ndc * w, y_ndc * w, z_clip, w], dim=-1)
    big = torch.finfo(depth.dtype).max
    lo = torch.where(finite, depth, torch.full_like(depth, big)).amin(dim=1, keepdim=True)
    hi = torch.where(finite, depth, torch.full_like(depth, -big)).amax(dim=1, keepdim=True)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    z_ndc = (depth - lo) / span * 1.98 - 0.99
    return torch.stack([x_ndc, y_ndc, z_ndc, torch.ones_like(z_ndc)], dim=-1)


@torch.no_grad()
def rasterize_visibility_nvdiffrast(
    vertices_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool = False,
    perspective_correct: bool = False,
    near: float = 1e-6,
) -> torch.Tensor:
    """Nearest triangle per pixel by nvdiffrast: ``(B, H, W)`` int64, ``-1`` for background.

    Same conventions and drop rules as :func:`flamefit.renderer.rasterize.rasterize_visibility`.
    """
    dr, context = load_nvdiffrast(vertices_screen.device)
    vertices = vertices_screen.detach().float()
    batch = vertices.shape[0]
    n_faces = faces.shape[0]
    # The torch rasteriser's rule in its precision (float64 stays float64): both draw the same triangles.
    setup = vertices_screen.detach()
    setup = setup if setup.dtype == torch.float64 else vertices
    keep, _ = drawable_triangles(gather_corners(setup, faces), cull_backfaces, perspective_correct, near)
    keep = keep.view(batch, n_faces)
    clip = to_clip_space(vertices, image_size, perspective_correct, near)  # (B, V, 4)
    corner_clip = clip[:, faces.reshape(-1)].view(batch, n_faces, 3, 4)
    outside = device_constant((2.0, 2.0, 2.0, 1.0), clip.dtype, clip.device)
    corner_clip = torch.where(keep[..., None, None], corner_clip, outside)
    corner_clip = torch.nan_to_num(corner_clip, nan=2.0, posinf=2.0, neginf=2.0)
    tri = torch.arange(3 * n_faces, device=clip.device, dtype=torch.int32).view(n_faces, 3)
    rast, _ = dr.rasterize(context, corner_clip.reshape(batch, 3 * n_faces, 4).contiguous(), tri, tuple(image_size))
    return rast[..., 3].round().long() - 1


def fragments_from_rast(rast: torch.Tensor, image_size: tuple[int, int]) -> Fragments:
    """Convert nvdiffrast's ``rast (B, H, W, 4)`` = ``(u, v, z/w, triangle_id + 1)`` to Fragments.

    nvdiffrast's ``u`` weights corner 0 and ``v`` corner 1 (corner 2 gets ``1 - u - v``); its
    barycentrics are perspective-correct. ``depth`` here is nvdiffrast's ``z/w`` (NDC depth,
    monotonic in our depth but not equal to it). Not differentiable; for comparisons.
    """
    face_index = rast[..., 3].round().long() - 1
    mask = face_index >= 0
    u, v = rast[..., 0], rast[..., 1]
    bary = torch.stack([u, v, 1.0 - u - v], dim=-1) * mask[..., None]
    flat = face_index.reshape(-1)
    pixel_index = torch.nonzero(flat >= 0).squeeze(1)
    return Fragments(
        face_index=face_index,
        bary=bary,
        depth=rast[..., 2] * mask,
        mask=mask,
        pixel_index=pixel_index,
        pixel_face=flat[pixel_index],
        pixel_bary=bary.reshape(-1, 3)[pixel_index],
        image_size=(int(image_size[0]), int(image_size[1])),
    )
