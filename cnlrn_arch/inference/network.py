"""A network loaded for inference, with what the code around it needs to know of it (:class:`LoadedNetwork`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnlrn_arch.inference.onnx_backend import OnnxNetwork
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.tiling import output_scale
from cnlrn_arch.weights.files import hash_tensors, plain_data
from cnlrn_arch.weights.loading import build_loaded
from cnlrn_base.errors import UserError
from cnlrn_base.inference_choices import BACKEND_PRECISIONS
from cnlrn_base.project import SCALE

# LR side of the input that measures a network's scale, rounded up to the multiple it pads to (a forward pass
# of the demo checkpoint at 8x8 takes 0.06 s on a CPU)
PROBE_SIDE = 8


@dataclass(frozen=True)
class LoadedNetwork:
    """A network ready to run, described as spandrel describes a model (its ``ImageModelDescriptor``).

    Attributes:
        module (nn.Module): what runs: the torch network in eval mode on its device
            (channels-last and compiled where the settings ask), or an
            :class:`~.onnx_backend.OnnxNetwork` running an ONNX file.
        backend (str): 'torch' or 'onnxruntime'.
        scale (int): output pixels per input pixel, along each side.
        size_multiple (int): the multiple the network pads its input's sides to (1: none).
        autocast_precisions (tuple[str, ...]): the keys of AMP_DTYPES it may autocast to; float32 always works.
        fingerprint (str): SHA-256 (hex) of what decides its outputs: the weights and the
            network options, or the ONNX file's bytes.
        source (str): where the weights came from, for messages.
    """

    module: nn.Module
    backend: str
    scale: int
    size_multiple: int
    autocast_precisions: tuple[str, ...]
    fingerprint: str
    source: str

    @classmethod
    def of_torch(
        cls,
        module: nn.Module,
        scale: int = SCALE,
        network_opt: dict[str, Any] | None = None,
        source: str = 'a network in memory',
    ) -> LoadedNetwork:
        """``module``, a torch network, described.

        Args:
            module (nn.Module): the network, as it will run.
            scale (int): its upscaling factor (see :func:`measured_scale`).
            network_opt (dict[str, Any] | None): the ``network_g`` options it was built from, if known.
            source (str): where its weights came from, for messages.
        """
        digest = hashlib.sha256(json.dumps(plain_data(network_opt), sort_keys=True).encode())
        hash_tensors(digest, module.state_dict())
        multiple = getattr(module, 'size_multiple', 1)  # the CNLRN networks pad their input; others do not say
        return cls(module, 'torch', scale, multiple, BACKEND_PRECISIONS['torch'], digest.hexdigest(), source)


def measured_scale(net: nn.Module, size_multiple: int, device: torch.device, source: str) -> int:
    """The upscaling factor of ``net``, read from its output for a small RGB input on ``device``.

    The options do not always say it (a deblurring network keeps the size; a cascade
    nests it), nor does an ONNX graph, whose output sizes are symbolic.

    Raises:
        UserError: naming ``source`` unless the network upscales by an integer factor.
    """
    side = math.ceil(PROBE_SIDE / size_multiple) * size_multiple
    x = torch.zeros(1, 3, side, side, device=device)
    try:
        with torch.inference_mode():
            return output_scale(x, net(x))
    except UserError as err:
        raise UserError(f'{source}: {err}') from None


def load_network(
    weights_path: str | os.PathLike,
    opt_path: str | os.PathLike | None = None,
    settings: InferenceSettings | None = None,
    backend: str = 'torch',
) -> LoadedNetwork:
    """The network holding ``weights_path`` (see :func:`~cnlrn_arch.weights.loading.build_loaded`), ready to run.

    Args:
        weights_path (str | os.PathLike): as in :func:`~cnlrn_arch.weights.loading.build_loaded`,
            or an ONNX file for onnxruntime.
        opt_path (str | os.PathLike | None): as in :func:`~cnlrn_arch.weights.loading.build_loaded`.
        settings (InferenceSettings | None): its device, channels-last order and compilation
            (None: the defaults, float32 on the CPU).
        backend (str): 'torch', or 'onnxruntime' to run the ONNX file ``weights_path``
            through onnxruntime behind the same module interface (``opt_path`` is then unused).

    Raises:
        UserError: naming the weights, for weights that cannot be loaded or do not fit, a
            network that does not upscale images by an integer factor, or an ONNX graph that
            is not an image network (see :class:`~.onnx_backend.OnnxNetwork`) or not x4.
    """
    settings = settings or InferenceSettings()
    source = os.fspath(weights_path)
    if backend == 'onnxruntime':
        net = OnnxNetwork(weights_path, settings.device)
        scale = measured_scale(net, net.size_multiple, settings.device, source)
        if scale != SCALE:  # a file's graph may be any network's; the outputs are named and sized as x4 ones
            raise UserError(f'{source}: the network upscales x{scale}, not x{SCALE} as CNLRN networks do')
        return LoadedNetwork(net, backend, scale, net.size_multiple, BACKEND_PRECISIONS[backend], net.sha256, source)
    net, network_opt = build_loaded(weights_path, opt_path)
    network = LoadedNetwork.of_torch(net.eval().to(settings.device), network_opt=network_opt, source=source)
    scale = measured_scale(network.module, network.size_multiple, settings.device, source)
    # channels-last and compiling change how the network computes, not what: it is measured and hashed before
    return dataclasses.replace(network, module=settings.prepare(network.module), scale=scale)
