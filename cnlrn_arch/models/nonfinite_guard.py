"""The non-finite guard: an update whose loss or gradient is not finite is skipped, too many in a row stop training.

``train: {nonfinite_patience: N}`` (default :data:`NONFINITE_PATIENCE`) sets how many in a row are tolerated.
Under DDP every rank skips alike: the check is reduced over the ranks.
"""

from collections.abc import Iterable

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger
from torch import nn

from cnlrn_base.errors import UserError

# consecutive non-finite updates tolerated before training stops
NONFINITE_PATIENCE = 10


class TrainingDiverged(UserError):
    """Too many non-finite updates in a row; the message names the last good checkpoint."""


def all_finite(loss: torch.Tensor, parameters: Iterable[nn.Parameter]) -> torch.Tensor:
    """Whether ``loss`` and every gradient of ``parameters`` are finite, as a boolean tensor (no device sync).

    Args:
        loss (torch.Tensor): the scalar loss.
        parameters (Iterable[nn.Parameter]): the parameters; those without a gradient are left out.

    Returns:
        torch.Tensor: a 0-dimensional boolean tensor.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    # a norm is finite only where every element is; one fused kernel per device and dtype (on CUDA), where
    # a check per tensor launched two kernels for each of CNLRN's 1,092 parameter tensors
    return torch.isfinite(loss) & torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()


class NonfiniteGuard:
    """Checks each update and counts the non-finite ones in a row.

    Args:
        patience (int): the non-finite updates in a row after which :meth:`skipped` raises.
        distributed (bool): whether the run has several ranks, whose checks are then reduced.
        device (torch.device): the device of this rank's process group tensors.

    Attributes:
        in_a_row (int): the non-finite updates since the last finite one.
    """

    def __init__(self, patience: int, distributed: bool, device: torch.device) -> None:
        self.patience, self.distributed, self.device = patience, distributed, device
        self.in_a_row = 0

    def update_is_finite(self, loss: torch.Tensor, parameters: Iterable[nn.Parameter]) -> bool:
        """Whether the update may be taken: loss and gradients finite, on every rank; a finite one resets the count.

        Args:
            loss (torch.Tensor): the scalar loss.
            parameters (Iterable[nn.Parameter]): the network's parameters, gradients unscaled.

        Returns:
            bool: True when finite everywhere.
        """
        finite = all_finite(loss, parameters)
        if self.distributed:
            finite = finite.to(self.device, torch.int32)
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite:
            self.in_a_row = 0
        return bool(finite)

    def skipped(
        self, current_iter: int, losses: dict[str, float], scaler: torch.amp.GradScaler, last: str | None
    ) -> None:
        """Count a skipped update and log it; raise after ``patience`` of them in a row.

        Args:
            current_iter (int): the iteration, for the log and the error.
            losses (dict[str, float]): the losses of the update, for the log.
            scaler (torch.amp.GradScaler): the loss scaler, whose scale the log shows when enabled.
            last (str | None): the last good checkpoint, for the error; None when none was saved yet.

        Raises:
            TrainingDiverged: naming the iteration and the last good checkpoint.
        """
        self.in_a_row += 1
        logged = ', '.join(f'{k}={v:.4g}' for k, v in losses.items())
        scale = f', fp16 loss scale now {scaler.get_scale():g}' if scaler.is_enabled() else ''
        get_root_logger().warning(
            f'iter {current_iter}: non-finite loss or gradient ({logged}); update skipped '
            f'({self.in_a_row} in a row{scale})'
        )
        if self.in_a_row >= self.patience:
            raise TrainingDiverged(
                f'training stopped at iter {current_iter} after {self.in_a_row} '
                f'non-finite updates in a row; last good checkpoint: {last or "none saved yet"} '
                '(lower the learning rate, then resume with --auto_resume)'
            )
