"""Loss terms of the fit. All return ``(B,)`` per-image values so that a batch can be fitted
as B independent problems (summed for the backward pass, tracked per image for convergence).

Landmarks are compared in the crop's normalised coordinates (``[-1, 1]`` across the crop, as
the reference implementation does), so weights do not depend on the fitting resolution.
"""

from __future__ import annotations

import torch


def landmark_loss(
    predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean Euclidean distance between landmark sets.

    Args:
        predicted: ``(B, L, 2)`` fitted landmarks, normalised crop coordinates.
        target: ``(B, L, 2)`` detected landmarks, same space.
        weights: optional ``(L,)`` or ``(B, L)`` per-landmark weights (0 ignores a landmark).

    Returns:
        ``(B,)`` weighted mean distance per image.
    """
    distance = torch.linalg.norm(predicted - target, dim=-1)  # (B, L)
    if weights is None:
        return distance.mean(dim=1)
    weights = weights.expand_as(distance)
    return (distance * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-8)


def robust_landmark_loss(
    predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, scale: float
) -> torch.Tensor:
    """Weighted robust distance between landmark sets (for many points, some of them wild).

    Each point costs ``rho(d) = d^2 / (d^2 + scale^2) * scale``: like a squared error below
    ``scale`` and bounded above it, so a few points on a hand or a microphone over the mouth
    (the detector's guess there) pull little.

    Args:
        predicted: ``(B, K, 2)`` fitted points, normalised crop coordinates.
        target: ``(B, K, 2)`` detected points, same space (any value where the weight is 0).
        weights: ``(B, K)`` per-point weights (0 ignores a point).
        scale: distance (normalised crop units) at which a point's influence peaks.

    Returns:
        ``(B,)`` weighted mean cost per image (0 for an image with no weighted point).
    """
    target = torch.where(weights[..., None] > 0, target, predicted.detach())
    distance2 = (predicted - target).pow(2).sum(dim=-1)
    cost = scale * distance2 / (distance2 + scale**2)
    return (cost * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-8)


def robust_photometric_loss(
    rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scale: float = 0.1
) -> torch.Tensor:
    """Masked robust colour difference (Geman-McClure-like, bounded influence of outliers).

    Each pixel costs ``rho(e) = e^2 / (e^2 + scale^2) * scale`` with ``e`` the RGB distance, which
    behaves like a squared error for small residuals and saturates for hair, glasses, hands
    or microphones that the model cannot explain, so they do not drag the fit.

    Args:
        rendered: ``(B, 3, H, W)`` rendered image in [0, 1].
        target: ``(B, 3, H, W)`` photo crop in [0, 1].
        mask: ``(B, 1, H, W)`` per-pixel weight in [0, 1] (face region x skin probability).
        scale: residual (RGB distance) at which a pixel's influence peaks.

    Returns:
        ``(B,)`` mean cost over the masked pixels.
    """
    error2 = ((rendered - target) ** 2).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    cost = scale * error2 / (error2 + scale**2)
    return (cost * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1).clamp_min(1.0)


def photometric_error(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain masked mean absolute error per image ``(B,)`` in [0, 1] units (for reports)."""
    error = (rendered - target).abs().mean(dim=1, keepdim=True)
    return (error * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1).clamp_min(1.0)


def gaussian_prior(coefficients: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` unit-variance coefficients -> ``(B,)`` half squared norm (negative log prior)."""
    return 0.5 * (coefficients**2).sum(dim=1)


def smoothness_loss(texture: torch.Tensor) -> torch.Tensor:
    """Total squared gradient of a ``(B, C, H, W)`` UV map -> ``(B,)`` (texture-offset prior)."""
    dx = texture[:, :, :, 1:] - texture[:, :, :, :-1]
    dy = texture[:, :, 1:, :] - texture[:, :, :-1, :]
    return (dx**2).flatten(1).mean(dim=1) + (dy**2).flatten(1).mean(dim=1)
