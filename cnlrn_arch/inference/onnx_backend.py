"""An exported ONNX network run by onnxruntime behind the interface of a torch module (``--backend onnxruntime``).

:func:`~.upscale.upscale` calls it like the torch network, so tiling and
self-ensemble work unchanged. It runs in float32: autocast (``--bf16``,
``--fp16``) does not apply to it and is refused.
"""

from __future__ import annotations

import hashlib
import os
import warnings

import torch
from torch import nn

from cnlrn_arch.archs.arch_util import pad_to_multiple
from cnlrn_arch.weights.onnx_file import INPUT_NAME, SIZE_MULTIPLE_KEY
from cnlrn_base.errors import UserError, first_line
from cnlrn_base.optional import import_optional


class OnnxNetwork(nn.Module):
    """An ONNX file from :func:`~cnlrn_arch.weights.onnx_file.export_onnx`, run by an onnxruntime session.

    On a CUDA ``device`` it runs on onnxruntime's CUDA provider where the
    installed onnxruntime has one (``onnxruntime-gpu``), otherwise on the CPU
    with as many threads as torch uses.

    Args:
        path (str | os.PathLike): the ``.onnx`` file.
        device (str | torch.device): where inputs come from and outputs go.

    Raises:
        UserError: naming the file, if it is missing or not an ONNX model onnxruntime can run.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = 'cpu'):
        super().__init__()
        ort = import_optional('onnxruntime', '.onnx networks (--backend onnxruntime)')
        if not os.path.isfile(path):
            raise UserError(f'ONNX file not found: {path}')
        with open(path, 'rb') as f:
            graph = f.read()
        self.sha256 = hashlib.sha256(graph).hexdigest()  # the bytes the session runs, as the network's fingerprint
        providers = ['CPUExecutionProvider']
        if torch.device(device).type == 'cuda':
            if 'CUDAExecutionProvider' in ort.get_available_providers():
                providers.insert(0, 'CUDAExecutionProvider')
            else:
                warnings.warn(
                    'this onnxruntime has no CUDA provider (pip install onnxruntime-gpu): running on the CPU',
                    stacklevel=2,
                )
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(graph, options, providers=providers)
        except Exception as err:  # protobuf, graph and operator errors of onnxruntime: the file, not a bug
            raise UserError(f'{path}: not an ONNX model onnxruntime can run ({first_line(err)})') from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        # the graph always pads by reflection, which needs sides longer than the padding; where they are not the
        # network replicates instead, so inputs are padded here as the network would pad them
        self.size_multiple = int(metadata.get(SIZE_MULTIPLE_KEY, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 -> the network's float32 output, on ``x``'s device."""
        if torch.is_autocast_enabled(x.device.type):
            raise UserError('autocast (--bf16, --fp16) does not apply to the onnxruntime backend, which runs float32')
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x.detach().to('cpu', torch.float32), self.size_multiple)
        (out,) = self.session.run(None, {INPUT_NAME: padded.contiguous().numpy()})
        out = torch.from_numpy(out)
        scale = out.shape[-1] // padded.shape[-1]
        return out[..., : height * scale, : width * scale].to(x.device)
