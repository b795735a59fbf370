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
from cnlrn_arch.weights.onnx_file import SIZE_MULTIPLE_KEY
from cnlrn_base.errors import UserError, first_line
from cnlrn_base.optional import import_optional

# the largest padding multiple a file's metadata may ask for: every input is padded up to one (3000 padded a
# small image to 3000x3000, gigabytes of activations); the CNLRN networks ask for 8 to 32
MAX_SIZE_MULTIPLE = 256


class OnnxNetwork(nn.Module):
    """An ONNX file from :func:`~cnlrn_arch.weights.onnx_file.export_onnx`, run by an onnxruntime session.

    On a CUDA ``device`` it runs on onnxruntime's CUDA provider where the
    installed onnxruntime has one (``onnxruntime-gpu``), otherwise on the CPU
    with as many threads as torch uses.

    Args:
        path (str | os.PathLike): the ``.onnx`` file.
        device (str | torch.device): where inputs come from and outputs go.

    Raises:
        UserError: naming the file, if it is missing or not an ONNX model onnxruntime can run,
            or not an image network: one float input of (N, 3, H, W) with free H and W, one
            output, and a ``size_multiple`` metadata entry from 1 to MAX_SIZE_MULTIPLE if any.
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
        self.input_name = _image_input(self.session, path)
        # the graph always pads by reflection, which needs sides longer than the padding; where they are not the
        # network replicates instead, so inputs are padded here as the network would pad them
        self.size_multiple = _size_multiple(self.session.get_modelmeta().custom_metadata_map, path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 -> the network's float32 output, on ``x``'s device."""
        if torch.is_autocast_enabled(x.device.type):
            raise UserError('autocast (--bf16, --fp16) does not apply to the onnxruntime backend, which runs float32')
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x.detach().to('cpu', torch.float32), self.size_multiple)
        (out,) = self.session.run(None, {self.input_name: padded.contiguous().numpy()})
        out = torch.from_numpy(out)
        scale = out.shape[-1] // padded.shape[-1]
        return out[..., : height * scale, : width * scale].to(x.device)


def _image_input(session, path: str | os.PathLike) -> str:
    """The name of the graph's input, once the graph takes float (N, 3, H, W) images of any size and gives one output.

    Raises:
        UserError: naming ``path`` and what differs (the names, types and shapes are the graph's).
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f'{path}: the graph has {len(inputs)} inputs and {len(outputs)} outputs, not one image each')
    (image,) = inputs
    if image.type != 'tensor(float)':
        raise UserError(f'{path}: its input {image.name} is {image.type}, not float32 images')
    shape = image.shape
    if len(shape) != 4 or shape[1] != 3:
        raise UserError(f'{path}: its input {image.name} has shape {shape}, not (N, 3, H, W) RGB images')
    if isinstance(shape[2], int) or isinstance(shape[3], int):
        raise UserError(
            f'{path}: its input {image.name} has a fixed height or width {shape[2:]}: export it with free ones '
            '(as cnlrn export --onnx does)'
        )
    return image.name


def _size_multiple(metadata: dict[str, str], path: str | os.PathLike) -> int:
    """The metadata's ``size_multiple`` (1 where there is none), once it lies from 1 to MAX_SIZE_MULTIPLE."""
    value = metadata.get(SIZE_MULTIPLE_KEY, '1')
    multiple = int(value) if value.isdigit() else 0
    if not 1 <= multiple <= MAX_SIZE_MULTIPLE:
        raise UserError(
            f'{path}: metadata {SIZE_MULTIPLE_KEY} {value[:20]!r} must be an integer from 1 to {MAX_SIZE_MULTIPLE}'
        )
    return multiple
