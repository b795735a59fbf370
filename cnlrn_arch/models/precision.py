"""How a model's network computes: autocast (``train: {amp}``, ``val: {amp}``), the fp16 loss scaler, TF32,
channels-last, torch.compile (:mod:`cnlrn_arch.runtime.speed`) and deterministic kernels (``deterministic``)."""

import os
from typing import Any

import torch
from torch import nn

from cnlrn_arch.runtime.speed import (
    channels_last_on,
    check_autocast,
    compiled,
    parse_speed,
    to_memory_format,
    use_tf32,
)
from cnlrn_base.errors import UserError


def use_deterministic_algorithms() -> None:
    """Make runs with the same seed repeat exactly (slower on GPU)."""
    # cuBLAS needs a fixed workspace to be deterministic; effective if set before its first use
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class Precision:
    """The precision and speed options of one model, checked and applied (TF32) when it is built.

    Args:
        opt (dict[str, Any]): the parsed options; reads ``train.amp``, ``val.amp``, ``speed``, ``dist``
            and ``num_gpu``.

    Attributes:
        train_amp (torch.dtype | None): the autocast dtype of training's forward pass; None: float32.
        val_amp (torch.dtype | None): the same for validation and testing.
        speed (Speed): channels_last, compile and tf32.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        self.train_amp, self.val_amp, self.speed = parse_speed(opt)
        if not opt['dist'] and opt['num_gpu'] > 1 and (self.train_amp or self.val_amp):
            # torch's DataParallel re-enters autocast in each replica's thread without its dtype, and the dtype is
            # per thread: every replica would compute in float16, bf16 asked or not, and without a loss scaler
            raise UserError(
                'train:amp / val:amp do not work with num_gpu > 1 in one process (DataParallel): run one process '
                'per GPU, torchrun --nproc_per_node=N -m cnlrn_arch.train -opt X.yml --launcher pytorch'
            )
        use_tf32(self.speed.tf32)
        self.compiled_nets = {}  # module -> its torch.compile wrapper, made at first use

    def memory_format(self, device: torch.device) -> torch.memory_format:
        """The memory format of the network's inputs on ``device``: channels-last where
        :func:`~cnlrn_arch.runtime.speed.channels_last_on` (``speed.channels_last``, or the CPU), else kept."""
        return torch.channels_last if channels_last_on(self.speed, device) else torch.preserve_format

    def in_memory_format(self, net: nn.Module, device: torch.device) -> nn.Module:
        """``net`` in the memory format of ``speed`` on ``device``, where the caller has moved it.

        Args:
            net (nn.Module): a bare network.
            device (torch.device): where ``net`` is.

        Returns:
            nn.Module: ``net``, converted in place.
        """
        return to_memory_format(net, self.speed, device)

    def run(self, net: nn.Module) -> nn.Module:
        """``net`` as it runs: compiled when ``speed.compile`` is set, else itself.

        The model keeps the plain modules, so state dicts, EMA and loading see the keys of the released weights.

        Args:
            net (nn.Module): ``net_g`` or ``net_g_ema``.

        Returns:
            nn.Module: the module to call.
        """
        if net not in self.compiled_nets:
            self.compiled_nets[net] = compiled(net, self.speed)
        return self.compiled_nets[net]

    def check_val_autocast(self, device_type: str) -> None:
        """Raise a UserError when ``val.amp`` does not work on ``device_type``.

        Args:
            device_type (str): 'cpu' or 'cuda'.
        """
        check_autocast(device_type, self.val_amp, 'val:amp')

    def grad_scaler(self, device_type: str) -> torch.amp.GradScaler:
        """Check ``train.amp`` on ``device_type``; the loss scaler of training.

        Args:
            device_type (str): 'cpu' or 'cuda'.

        Returns:
            torch.amp.GradScaler: disabled (every call a pass-through) unless fp16, whose small range needs the
            loss scaled.
        """
        check_autocast(device_type, self.train_amp, 'train:amp')
        return torch.amp.GradScaler(device_type, enabled=self.train_amp == torch.float16)
