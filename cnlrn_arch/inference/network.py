"""Pick the device ``cnlrn infer`` runs on, and load its network in eval mode."""

from __future__ import annotations

import os

import torch
from torch import nn

from cnlrn_arch.weights.loading import build_loaded
from cnlrn_base.errors import UserError


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


def load_network(
    weights_path: str | os.PathLike,
    opt_path: str | os.PathLike | None = None,
    device: str | torch.device = 'cpu',
    backend: str = 'torch',
) -> nn.Module:
    """The network holding ``weights_path`` (see :func:`build_loaded`) in eval mode.

    Args:
        weights_path (str | os.PathLike): as in :func:`build_loaded`.
        opt_path (str | os.PathLike | None): as in :func:`build_loaded`.
        device (str | torch.device): where the network is moved.
        backend (str): 'torch', or 'onnxruntime' to run the ONNX file ``weights_path``
            through onnxruntime behind the same module interface (``opt_path`` is then unused).
    """
    if backend == 'onnxruntime':
        from cnlrn_arch.inference.onnx_backend import OnnxNetwork  # onnxruntime is optional

        return OnnxNetwork(weights_path, device)
    return build_loaded(weights_path, opt_path)[0].eval().to(device)
