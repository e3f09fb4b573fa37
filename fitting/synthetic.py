"""Synthetic fitting problems with known answers: renders of the head with random parameters.

Used by the recovery tests and by ``benchmarks/bench_accuracy.py`` / ``bench_fit.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flamefit.fitting.parameters import FitParameters
from flamefit.fitting.scene import HeadScene
from flamefit.flame.pose_layout import GLOBAL, JAW
from flamefit.renderer.shading import SH_CONSTANT_FACTORS


@dataclass
class SyntheticBatch:
    """B synthetic crops and their truth.

    Attributes:
        truth: the parameters that made the images.
        images: ``(B, 3, R, R)`` renders on a flat random background (plus occluders), [0, 1].
        landmarks_px: ``(B, 68, 2)`` exact projected fitting landmarks, crop pixels.
        vertices: ``(B, V, 3)`` true vertices, model space.
        occluded: ``(B,)`` bool, whether an occluder was pasted on the item.
    """

    truth: FitParameters
    images: torch.Tensor
    landmarks_px: torch.Tensor
    vertices: torch.Tensor
    occluded: torch.Tensor


def random_parameters(scene: HeadScene, batch: int, generator: torch.Generator,
                      spread: float = 1.0) -> FitParameters:
    """Plausible random parameters: identity/expression/albedo coefficients (expressions within
    the model's bounds when it has them), a head turned up
    to ~20 degrees, a slightly open jaw, a random ambient (shading 0.55-0.8 per channel) plus
    directional light and a camera framing the head (its model's :meth:`random`)."""
    def normal(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=generator)

    truth = scene.initial_parameters(batch, "cpu")
    n_shape = min(20, truth.shape.shape[1])
    n_expression = min(10, truth.expression.shape[1])
    truth.shape[:, :n_shape] = normal(batch, n_shape) * 0.8 * spread
    truth.expression[:, :n_expression] = normal(batch, n_expression) * 0.5 * spread
    if scene.flame.expression_bounds is not None:  # blendshape weights: |N(0, 0.5)| within range
        truth.expression.abs_().clamp_(*scene.flame.expression_bounds)
    truth.pose[:, GLOBAL] = normal(batch, 3) * torch.tensor([0.12, 0.25, 0.05]) * spread
    truth.pose[:, JAW.start] = torch.rand(batch, generator=generator) * 0.15 * spread  # jaw opens about x
    truth.texture[:] = normal(batch, truth.texture.shape[1]) * 0.8 * spread
    direction = normal(batch, 3) * 0.25 + torch.tensor([0.0, 0.2, 0.4])
    truth.light[:, 1:4, :] = direction[:, :, None] * (0.8 + 0.4 * torch.rand(batch, 1, 3, generator=generator))
    ambient = 0.55 + 0.25 * torch.rand(batch, 3, generator=generator)  # the constant band's shading
    truth.light[:, 0, :] = ambient / SH_CONSTANT_FACTORS[0]
    truth.camera[:] = scene.camera_model.random(batch, generator)
    return truth


def paste_occluders(images: torch.Tensor, which: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Paste a flat-coloured rectangle (a hand, a microphone) over ~10-20 % of the crop on the
    items where ``which`` is True; ``images (B, 3, R, R)`` -> a new tensor."""
    images = images.clone()
    size = images.shape[-1]
    for index in torch.nonzero(which).flatten().tolist():
        height = int(size * (0.2 + 0.15 * torch.rand(1, generator=generator).item()))
        width = int(size * (0.2 + 0.15 * torch.rand(1, generator=generator).item()))
        top = int(size * (0.3 + 0.3 * torch.rand(1, generator=generator).item()))
        left = int(size * (0.2 + 0.4 * torch.rand(1, generator=generator).item()))
        colour = torch.rand(3, 1, 1, generator=generator)
        images[index, :, top : top + height, left : left + width] = colour
    return images


def synthetic_batch(scene: HeadScene, batch: int, resolution: int = 224, seed: int = 0,
                    occluder_fraction: float = 0.0, spread: float = 1.0) -> SyntheticBatch:
    """Render ``batch`` random heads; a fraction of them get an occluder."""
    generator = torch.Generator().manual_seed(seed)
    truth = random_parameters(scene, batch, generator, spread)
    with torch.no_grad():
        rendered = scene.render(truth, resolution)
    background = torch.rand(batch, 3, 1, 1, generator=generator) * 0.6 + 0.2
    images = rendered.image + (1 - rendered.alpha) * background
    occluded = torch.rand(batch, generator=generator) < occluder_fraction
    images = paste_occluders(images, occluded, generator).clamp(0, 1)
    return SyntheticBatch(truth, images, rendered.landmarks_px, rendered.vertices, occluded)


def similarity_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Align ``source (B, N, 3)`` to ``target (B, N, 3)`` by the least-squares rotation, uniform
    scale and translation (Umeyama); returns the aligned source."""
    mu_s, mu_t = source.mean(dim=1, keepdim=True), target.mean(dim=1, keepdim=True)
    s, t = source - mu_s, target - mu_t
    u, sigma, vh = torch.linalg.svd(t.transpose(1, 2) @ s)
    sign = torch.ones_like(sigma)
    sign[:, -1] = torch.sign(torch.linalg.det(u @ vh))
    rotation = u @ torch.diag_embed(sign) @ vh
    scale = (sigma * sign).sum(dim=1) / s.pow(2).sum(dim=(1, 2))
    return scale[:, None, None] * s @ rotation.transpose(1, 2) + mu_t


def face_vertex_error_mm(scene: HeadScene, params: FitParameters, vertices: torch.Tensor,
                         align: bool = False) -> torch.Tensor:
    """``(B,)`` mean distance (mm) between the fitted and true face-region vertices, model space.

    Both meshes are posed with their own parameters, so the error includes pose errors as a
    user of the mesh sees them. With ``align=True`` the fitted face is first aligned to the true
    one by a similarity (rotation, scale, translation), as face-reconstruction benchmarks do:
    a single orthographic view cannot tell a larger head further away from a smaller one."""
    with torch.no_grad():
        fitted = scene.flame(shape=params.shape, expression=params.expression, pose=params.pose).vertices
        face = scene.face_region
        fitted, truth = fitted[:, face], vertices[:, face]
        if align:
            fitted = similarity_align(fitted.double(), truth.double()).to(truth.dtype)
        return (fitted - truth).norm(dim=-1).mean(dim=1) * 1000.0
