"""Validation and testing: each validation numbered, run once per iteration and data set, and timed; the
restoration itself, optionally with x8 self-ensemble. The TensorBoard pictures are in :mod:`.tensorboard_images`."""

import time
from collections.abc import Callable
from typing import Any

import torch
from basicsr.utils import get_root_logger
from torch import nn

from cnlrn_arch.runtime.dist_timeout import dist_timeout_minutes
from cnlrn_arch.runtime.self_ensemble import self_ensemble
from cnlrn_arch.runtime.speed import autocast


class ValidationRuns:
    """Runs each validation of a training once per iteration and data set, and logs how long it took.

    basicsr's train_pipeline validates once more after its loop, numbered with the count the loop ended at
    (``total_iter`` + 1 or 2) and with the weights of ``total_iter``, which the loop may have validated already.

    Args:
        opt (dict[str, Any]): the run's options, kept (not copied): ``is_train``, ``train.total_iter``, ``dist``
            and ``dist_params.timeout_minutes`` are read at each validation.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        self.opt = opt
        self.done = set()  # (iteration, data set name) of each validation of this run

    def run(self, validate: Callable[[int], None], dataset_name: str, current_iter: int) -> None:
        """Call ``validate`` with the iteration of the weights, unless done already; log its duration.

        Under DDP the other ranks wait for rank 0's validation, up to the timeout: a warning says when it came
        near.

        Args:
            validate (Callable[[int], None]): validates one data set after the iteration it is given.
            dataset_name (str): the validation set's name.
            current_iter (int): the iteration basicsr validates after.
        """
        logger = get_root_logger()
        total_iter = self.opt['train'].get('total_iter') if self.opt['is_train'] else None
        if total_iter is not None and current_iter > total_iter:
            current_iter = total_iter
        done = (current_iter, dataset_name)
        if done in self.done:
            logger.info(f'Validation of {dataset_name} at iter {current_iter} done already: the weights are the same.')
            return
        start = time.perf_counter()
        validate(current_iter)
        self.done.add(done)
        seconds = time.perf_counter() - start
        logger.info(f'Validation at iter {current_iter} took {seconds:.0f} s.')
        timeout = dist_timeout_minutes(self.opt)
        if self.opt['dist'] and seconds > 30 * timeout:
            logger.warning(
                f'Validation took {seconds:.0f} s, over half of dist_params:timeout_minutes ({timeout:g}), for which '
                'the other ranks wait: raise it, or validate less often or on fewer images'
            )


def restore(
    net: nn.Module, run: nn.Module, lq: torch.Tensor, amp: torch.dtype | None, use_ensemble: bool
) -> torch.Tensor:
    """The float32 output of ``run`` on ``lq`` in eval mode without gradients, averaged over the 8 flips and
    rotations with ``use_ensemble``.

    Args:
        net (nn.Module): the plain network, switched to eval mode and back.
        run (nn.Module): the module to call: ``net`` or its compiled wrapper.
        lq (torch.Tensor): the input batch.
        amp (torch.dtype | None): the autocast dtype; None: float32.
        use_ensemble (bool): whether to average the x8 self-ensemble.

    Returns:
        torch.Tensor: the restored batch.
    """

    def forward(x):
        return run(x).float()  # tensor2img, the metrics and the ensemble's average want float32

    was_training = net.training
    net.eval()
    with torch.no_grad(), autocast(lq.device, amp):
        output = self_ensemble(forward, lq) if use_ensemble else forward(lq)
    net.train(was_training)
    return output
