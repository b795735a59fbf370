"""Build the network that ``cnlrn infer`` runs, load its weights, pick its device."""

from __future__ import annotations

import os

import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..archs.cnlrn_arch import CNLRN
from ..utils.errors import UserError
from ..utils.option_check import check_buildable, check_registered, load_option_file
from ..utils.weights import load_into, read_state_dict


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' as a torch.device.

    Raises:
        UserError: for 'cuda' where CUDA is not available.
    """
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif name == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda: CUDA is not available here (no GPU visible, or torch built without CUDA)')
    return torch.device(name)


def build_from_options(opt_path: str | os.PathLike) -> nn.Module:
    """The network described by ``network_g`` of option file ``opt_path``, with no weights loaded.

    Raises:
        UserError: naming the file, if it cannot be read or its ``network_g`` is
            missing, unregistered or cannot be built.
    """
    opt = load_option_file(opt_path)
    network_opt = opt.get('network_g')
    check_registered(network_opt, ARCH_REGISTRY, 'network', 'network_g:', opt_path)
    check_buildable(network_opt, f'{opt_path}: network_g')
    return build_network(network_opt)


def load_network(
    weights_path: str | os.PathLike,
    opt_path: str | os.PathLike | None = None,
    device: str | torch.device = 'cpu',
    backend: str = 'torch',
) -> nn.Module:
    """The network (``network_g`` of ``opt_path``, else CNLRN's defaults) in eval mode, holding ``weights_path``.

    Args:
        weights_path (str | os.PathLike): a bare state dict (the authors'
            release) or a BasicSR checkpoint, whose ``params_ema`` (the
            averaged, usually better weights) is preferred to ``params``.
        opt_path (str | os.PathLike | None): option file whose ``network_g``
            describes the network; None builds :class:`~cnlrn_arch.archs.cnlrn_arch.CNLRN`
            with its defaults.
        device (str | torch.device): where the network is moved.
        backend (str): 'torch', or 'onnxruntime' to run the ONNX file ``weights_path``
            through onnxruntime behind the same module interface (``opt_path`` is then unused).
    """
    if backend == 'onnxruntime':
        from .onnx_backend import OnnxNetwork  # onnxruntime is optional

        return OnnxNetwork(weights_path, device)
    net = build_from_options(opt_path) if opt_path else CNLRN()
    load_into(net, read_state_dict(weights_path, 'params_ema'), weights_path)
    return net.eval().to(device)
