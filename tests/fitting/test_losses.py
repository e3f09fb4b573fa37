"""The loss terms of the fit on tiny hand-made tensors, against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from flamefit.fitting.losses import (
    gaussian_prior,
    landmark_loss,
    photometric_error,
    robust_photometric_loss,
    smoothness_loss,
)


# -- landmark_loss ---------------------------------------------------------------------------
def test_landmark_loss_is_the_mean_euclidean_distance():
    # image 0: distances 0 and 5 (a 3-4-5 triangle) -> 2.5; image 1: distances 1 and 1 -> 1
    predicted = torch.tensor([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [2.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [2.0, 1.0]]])
    torch.testing.assert_close(landmark_loss(predicted, target), torch.tensor([2.5, 1.0]))


def test_landmark_loss_weights_per_landmark_and_per_image():
    predicted = torch.tensor([[[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0], [3.0, 4.0]]])
    target = torch.zeros(2, 2, 2)
    # (L,) weights: (0 * 1 + 5 * 3) / (1 + 3) = 3.75 for both images
    torch.testing.assert_close(landmark_loss(predicted, target, torch.tensor([1.0, 3.0])),
                               torch.tensor([3.75, 3.75]))
    # (B, L) weights: image 0 ignores the far landmark (0), image 1 counts only it (5)
    weights = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(landmark_loss(predicted, target, weights), torch.tensor([0.0, 5.0]))


def test_landmark_loss_with_all_weights_zero_is_zero_not_nan():
    predicted = torch.tensor([[[3.0, 4.0]]])
    assert landmark_loss(predicted, torch.zeros(1, 1, 2), torch.zeros(1)).item() == 0.0


def test_landmark_loss_gradient_is_the_unit_direction_and_finite_at_zero_distance():
    predicted = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]], requires_grad=True)
    landmark_loss(predicted, torch.zeros(1, 2, 2)).sum().backward()
    # d/dp of |p| / 2 landmarks = p / |p| / 2 = (0.3, 0.4); a landmark exactly on its target
    # (distance 0, where the norm has no derivative) must give a finite gradient, not NaN
    assert torch.isfinite(predicted.grad).all()
    torch.testing.assert_close(predicted.grad[0, 1], torch.tensor([0.3, 0.4]))


# -- robust_photometric_loss -----------------------------------------------------------------
def two_pixels():
    """One image of 1 x 2 pixels against a black target: pixel 0 is off by RGB (0.1, 0, 0)
    (squared distance 0.01), pixel 1 by (0.3, 0.4, 0) (squared distance 0.25)."""
    rendered = torch.tensor([[[[0.1, 0.3]], [[0.0, 0.4]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    return rendered, torch.zeros_like(rendered)


# rho(e) = scale * e^2 / (e^2 + scale^2), scale 0.1:
COST_0 = 0.1 * 0.01 / (0.01 + 0.01)  # 0.05: at e = scale the cost is half the ceiling
COST_1 = 0.1 * 0.25 / (0.25 + 0.01)  # 0.09615...


@pytest.mark.parametrize("mask, expected", [
    ([1.0, 0.0], COST_0),                        # only pixel 0
    ([0.0, 1.0], COST_1),                        # only pixel 1
    ([1.0, 1.0], (COST_0 + COST_1) / 2),         # mean over the masked pixels
    ([2.0, 2.0], (COST_0 + COST_1) / 2),         # a weighted mean: the mask's scale cancels
    ([0.5, 0.5], 0.5 * COST_0 + 0.5 * COST_1),   # mask sum 1
    # mask sum below 1: the denominator is clamped at 1, so a faint mask gives a smaller cost
    # (no blow-up of a few barely-weighted pixels)
    ([0.25, 0.25], 0.25 * COST_0 + 0.25 * COST_1),
])
def test_robust_photometric_loss_by_hand(mask, expected):
    rendered, target = two_pixels()
    weight = torch.tensor(mask).reshape(1, 1, 1, 2)
    loss = robust_photometric_loss(rendered, target, weight, scale=0.1)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_robust_photometric_loss_all_zero_mask_is_zero_with_zero_gradient():
    rendered, target = two_pixels()
    rendered.requires_grad_(True)
    loss = robust_photometric_loss(rendered, target, torch.zeros(1, 1, 1, 2))
    assert loss.item() == 0.0
    loss.sum().backward()
    assert torch.isfinite(rendered.grad).all() and not rendered.grad.any()


def test_robust_photometric_loss_is_bounded_by_scale_and_zero_for_a_perfect_match():
    huge = torch.full((1, 3, 2, 2), 100.0)
    mask = torch.ones(1, 1, 2, 2)
    cost = robust_photometric_loss(huge, torch.zeros_like(huge), mask, scale=0.1).item()
    assert cost < 0.1 and cost == pytest.approx(0.1, rel=1e-5)  # e^2 = 30000: saturated
    assert robust_photometric_loss(huge, huge.clone(), mask).item() == 0.0


def test_robust_photometric_loss_gradient_by_hand():
    rendered, target = two_pixels()
    rendered.requires_grad_(True)
    robust_photometric_loss(rendered, target, torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2),
                            scale=0.1).sum().backward()
    # d rho / d e^2 = scale^3 / (e^2 + scale^2)^2 = 0.001 / 0.0004 = 2.5; d e^2 / d red = 2 * 0.1
    expected = torch.zeros(1, 3, 1, 2)
    expected[0, 0, 0, 0] = 2.5 * 0.2
    torch.testing.assert_close(rendered.grad, expected)


def test_robust_photometric_loss_keeps_images_of_a_batch_apart():
    rendered, target = two_pixels()
    batch = torch.cat([rendered, target])  # image 1 matches its target exactly
    mask = torch.ones(2, 1, 1, 2)
    loss = robust_photometric_loss(batch, torch.cat([target, target]), mask)
    torch.testing.assert_close(loss, torch.tensor([(COST_0 + COST_1) / 2, 0.0]))


# -- photometric_error -----------------------------------------------------------------------
def test_photometric_error_is_the_masked_mean_absolute_error():
    rendered, target = two_pixels()
    # per pixel, mean over RGB of |difference|: (0.1 + 0 + 0) / 3 and (0.3 + 0.4 + 0) / 3
    both = photometric_error(rendered, target, torch.ones(1, 1, 1, 2))
    assert both.item() == pytest.approx((0.1 / 3 + 0.7 / 3) / 2, rel=1e-6)
    second = photometric_error(rendered, target, torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2))
    assert second.item() == pytest.approx(0.7 / 3, rel=1e-6)
    # the sign of the difference does not matter
    assert photometric_error(target, rendered, torch.ones(1, 1, 1, 2)).item() == pytest.approx(both.item())


def test_photometric_error_all_zero_mask_is_zero():
    rendered, target = two_pixels()
    assert photometric_error(rendered, target, torch.zeros(1, 1, 1, 2)).item() == 0.0


# -- gaussian_prior --------------------------------------------------------------------------
def test_gaussian_prior_is_half_the_squared_norm_with_gradient_the_coefficients():
    coefficients = torch.tensor([[3.0, 4.0], [1.0, -2.0]], requires_grad=True)
    prior = gaussian_prior(coefficients)
    torch.testing.assert_close(prior, torch.tensor([12.5, 2.5]))
    prior.sum().backward()
    torch.testing.assert_close(coefficients.grad, torch.tensor([[3.0, 4.0], [1.0, -2.0]]))
    assert gaussian_prior(torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]


# -- smoothness_loss -------------------------------------------------------------------------
def test_smoothness_loss_by_hand():
    # a horizontal ramp 0, 1, 3 on both rows: dx = 1, 2 (squares 1, 4; mean 2.5), dy = 0
    ramp = torch.tensor([[0.0, 1.0, 3.0], [0.0, 1.0, 3.0]])[None, None]
    # a vertical step of 2: dx = 0, dy = 2 everywhere (square 4)
    step = torch.tensor([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])[None, None]
    torch.testing.assert_close(smoothness_loss(torch.cat([ramp, step])), torch.tensor([2.5, 4.0]))
    # a constant map costs nothing; channels are averaged with the pixels
    assert smoothness_loss(torch.full((1, 3, 4, 4), 0.7)).item() == 0.0
    two_channels = torch.cat([ramp, torch.zeros_like(ramp)], dim=1)
    assert smoothness_loss(two_channels).item() == pytest.approx(1.25)


def test_smoothness_loss_gradient_is_finite_and_pulls_toward_the_neighbours():
    texture = torch.zeros(1, 1, 3, 3)
    texture[0, 0, 1, 1] = 1.0  # a single bright texel
    texture.requires_grad_(True)
    smoothness_loss(texture).sum().backward()
    grad = texture.grad[0, 0]
    assert torch.isfinite(grad).all()
    # dx has 6 entries, two of which involve the centre (+1 and -1): d/dcentre = 2 * 2 * 1 / 6;
    # the same from dy
    assert grad[1, 1].item() == pytest.approx(2 * (4.0 / 6.0))
    assert grad[0, 1].item() < 0 and grad[1, 0].item() < 0 and grad[0, 0].item() == 0.0


def test_robust_landmark_loss_by_hand_and_bounded():
    from flamefit.fitting.losses import robust_landmark_loss

    predicted = torch.zeros(1, 3, 2)
    target = torch.tensor([[[0.03, 0.04], [10.0, 0.0], [5.0, 5.0]]])
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    scale = 0.05
    value = robust_landmark_loss(predicted, target, weights, scale)
    near = scale * 0.05**2 / (0.05**2 + scale**2)  # distance 0.05 -> half of the scale
    far = scale * 100.0 / (100.0 + scale**2)  # a wild point costs at most `scale`
    assert torch.allclose(value, torch.tensor([(near + far) / 2]))
    # a wild point barely pulls: its gradient is tiny next to a near point's
    predicted.requires_grad_(True)
    robust_landmark_loss(predicted, target, weights, scale).sum().backward()
    assert predicted.grad[0, 1].norm() < 0.01 * predicted.grad[0, 0].norm()
    assert torch.all(predicted.grad[0, 2] == 0)  # weight 0: ignored


def test_robust_landmark_loss_ignores_nan_targets_with_zero_weight():
    from flamefit.fitting.losses import robust_landmark_loss

    predicted = torch.zeros(2, 2, 2, requires_grad=True)
    target = torch.tensor([[[float("nan"), 0.0], [0.1, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    weights = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    value = robust_landmark_loss(predicted, torch.nan_to_num(target), weights, 0.05)
    value.sum().backward()
    assert torch.isfinite(value).all() and value[1] == 0
    assert torch.isfinite(predicted.grad).all()
