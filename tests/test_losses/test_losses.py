"""GradientLoss against a direct per-channel transcription of the release's formula."""

import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY

import cnlrn_arch  # noqa: F401  registers GradientLoss

GX = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).view(1, 1, 3, 3)
GY = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]).view(1, 1, 3, 3)


def release_gradient_loss(out, gt):
    total = 0
    for kernel in (GX, GY):
        diffs = [
            F.conv2d(out[:, c : c + 1], kernel, padding=1) - F.conv2d(gt[:, c : c + 1], kernel, padding=1)
            for c in range(out.shape[1])
        ]
        total = total + torch.cat(diffs, 1).abs().mean()
    return total


def test_matches_release_formula():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 12, 10), torch.rand(2, 3, 12, 10)
    loss = LOSS_REGISTRY.get('GradientLoss')(loss_weight=0.1)
    assert torch.allclose(loss(pred, target), 0.1 * release_gradient_loss(pred, target), atol=1e-6)


def test_reductions_are_consistent():
    pred, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    cls = LOSS_REGISTRY.get('GradientLoss')
    per_pixel = cls(reduction='none')(pred, target)
    assert per_pixel.shape == (1, 3, 8, 8)
    assert torch.allclose(cls(reduction='sum')(pred, target), per_pixel.sum(), rtol=1e-5)
    assert torch.allclose(cls()(pred, target), per_pixel.mean(), rtol=1e-5)


def test_constant_offset_has_no_interior_gradient_loss():
    pred = torch.rand(1, 3, 8, 8)
    per_pixel = LOSS_REGISTRY.get('GradientLoss')(reduction='none')(pred + 0.5, pred)
    assert per_pixel[..., 1:-1, 1:-1].abs().max() < 1e-5
    assert per_pixel.sum() > 0  # zero padding makes the border see the offset


def test_loss_is_differentiable():
    pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    LOSS_REGISTRY.get('GradientLoss')()(pred, torch.rand(1, 3, 8, 8)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_bad_reduction():
    with pytest.raises(ValueError, match='Unsupported reduction'):
        LOSS_REGISTRY.get('GradientLoss')(reduction='avg')
