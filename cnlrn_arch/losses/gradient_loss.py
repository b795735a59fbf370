"""Sobel-gradient L1 loss of the CNLRN release, for sharper edges in joint training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import l1_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_REDUCTIONS = ('none', 'mean', 'sum')
SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


@LOSS_REGISTRY.register()
class GradientLoss(nn.Module):
    """L1 distance between Sobel gradients of prediction and target.

    Per colour channel, with zero padding 1 as released:
    ``loss_weight * (L1(Gx(pred), Gx(target)) + L1(Gy(pred), Gy(target)))``.

    Args:
        loss_weight (float): multiplier of the loss (the paper uses 0.1 beside L1).
        reduction (str): 'none' | 'mean' | 'sum', as in BasicSR's losses; 'none'
            returns the per-pixel sum of both gradient terms.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'Unsupported reduction mode: {reduction}. Supported ones are: {list(_REDUCTIONS)}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.register_buffer('kernels', torch.tensor([SOBEL_X, SOBEL_Y]).unsqueeze(1), persistent=False)

    def gradients(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, 2, H, W): horizontal and vertical Sobel responses."""
        n, c, h, w = x.shape
        grads = F.conv2d(x.reshape(n * c, 1, h, w), self.kernels.to(x.dtype), padding=1)
        return grads.view(n, c, 2, h, w)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, **kwargs: object
    ) -> torch.Tensor:
        """The loss; a scalar, or (N, C, H, W) with reduction 'none'.

        Args:
            pred (torch.Tensor): (N, C, H, W) prediction.
            target (torch.Tensor): (N, C, H, W) ground truth.
            weight (torch.Tensor | None): (N, C, H, W) per-pixel weights, as in BasicSR's L1Loss.
            **kwargs: ignored, as by BasicSR's losses.
        """
        if weight is not None:
            weight = weight.unsqueeze(2).expand(-1, -1, 2, -1, -1)
        loss = l1_loss(self.gradients(pred), self.gradients(target), weight, reduction=self.reduction)
        # the release sums a mean over Gx and a mean over Gy: twice the mean over both
        if self.reduction == 'mean':
            loss = loss * 2
        elif self.reduction == 'none':
            loss = loss.sum(dim=2)
        return self.loss_weight * loss
