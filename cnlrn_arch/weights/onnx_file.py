"""Write a network as an ONNX graph whose batch, height and width are free (``cnlrn export --onnx``).

The graph is recorded by torch's TorchScript-based exporter (``dynamo=False``):
while it records, the CNLRN networks take no branch on their input's size
(:func:`~cnlrn_arch.archs.arch_util.exporting`), so the graph computes padding,
patch counts and the final crop from the input's shape and serves every size.
The torch.export-based exporter gives the same graph but needs the
``onnxscript`` package and takes about 30 times longer.

Reflection padding in the graph needs each side longer than its padding;
:class:`~cnlrn_arch.inference.onnx_backend.OnnxNetwork` pads smaller inputs
before the graph as the network would (the model's ``size_multiple`` metadata).
"""

from __future__ import annotations

import io
import os
import warnings

import torch
from torch import nn

from cnlrn_base.atomic import atomic_write, write_failure
from cnlrn_base.errors import UserError
from cnlrn_base.optional import import_optional

# opset 14 is the first with the attention operator the exporter needs; 20 is the TorchScript exporter's last
MIN_OPSET = 14
MAX_OPSET = 20
# widely supported by runtimes (onnxruntime 1.14+, TensorRT 8.6+)
DEFAULT_OPSET = 17
INPUT_NAME = 'lq'
OUTPUT_NAME = 'output'
# metadata entry: the multiple the network pads its input's sides to (see the module's docstring)
SIZE_MULTIPLE_KEY = 'size_multiple'


def export_onnx(net: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> None:
    """Write ``net``, an NCHW image-to-image network in eval mode, to the ONNX file ``path``.

    The graph takes float32 ``lq`` (N, C, H, W) of any N, H, W and gives
    ``output`` (N, C', sH, sW). The file appears complete or not at all, and
    is checked by ``onnx.checker`` before it is written.

    Args:
        net (nn.Module): the network, e.g. from :func:`~cnlrn_arch.weights.loading.build_loaded`.
        path (str | os.PathLike): the ``.onnx`` file to write (replaced if present).
        opset (int): the ONNX opset, from MIN_OPSET to MAX_OPSET.

    Raises:
        UserError: for an opset out of range, or when ``path`` cannot be written.
    """
    onnx = import_optional('onnx', 'ONNX exports')
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UserError(f'ONNX opset {opset} is not supported: choose one from {MIN_OPSET} to {MAX_OPSET}')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # before the export, which takes a minute for the released network
        raise UserError(f'cannot write {path}: the folder {folder} does not exist')
    multiple = getattr(net, 'size_multiple', 1)
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    # any size works: sides that are not multiples of it make the trace pad, as most inputs will
    sample = torch.rand(1, first_conv.in_channels, 2 * multiple + 1, 2 * multiple + 3, device=first_conv.weight.device)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the legacy exporter's deprecation notice, and tracer warnings about sizes (the parity tests at
        # several sizes check the graph, tests/test_export/test_onnx.py)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            net,
            (sample,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                OUTPUT_NAME: {0: 'batch', 2: 'out_height', 3: 'out_width'},
            },
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, {SIZE_MULTIPLE_KEY: str(multiple)})
    onnx.checker.check_model(model, full_check=True)
    try:
        atomic_write(path, model.SerializeToString())
    except OSError as err:
        raise UserError(write_failure(path, err)) from None
