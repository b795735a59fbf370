"""Where one forward's time goes, operator by operator, in PyTorch (torch.profiler) and onnxruntime (its own profiler).

Both runtimes' operators are put into the same few kinds of work, so that
their totals can stand side by side: convolutions, the attention's and the
1x1 embeddings' matrix products (with the softmax, which PyTorch's fused
attention kernel computes inside), layout copies and reorders, and the rest
(elementwise work: activations, residual sums, channel attention).
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
from collections.abc import Callable

import torch

KINDS = ('convolutions', 'attention and embedding products, softmax', 'layout copies and reorders', 'other')
TORCH_KINDS = {
    'aten::mkldnn_convolution': 0,
    'aten::_slow_conv2d_forward': 0,
    'aten::_convolution': 0,
    'aten::_scaled_dot_product_flash_attention_for_cpu': 1,
    'aten::addmm': 1,
    'aten::mm': 1,
    'aten::bmm': 1,
    'aten::_softmax': 1,
    'aten::copy_': 2,
    'aten::cat': 2,
    'aten::clone': 2,
    'aten::pixel_shuffle': 2,
    'aten::reflection_pad2d': 2,
    'aten::replication_pad2d': 2,
}
ORT_KINDS = {
    'Conv': 0,
    'FusedConv': 0,
    'ConvTranspose': 0,
    'MatMul': 1,
    'FusedMatMul': 1,
    'Gemm': 1,
    'Softmax': 1,
    'Transpose': 2,
    'Reshape': 2,
    'Concat': 2,
    'Slice': 2,
    'Pad': 2,
    'DepthToSpace': 2,
    'SpaceToDepth': 2,
    'ReorderInput': 2,
    'ReorderOutput': 2,
    'Gather': 2,
    'Unsqueeze': 2,
    'Squeeze': 2,
    'Expand': 2,
    'Split': 2,
}
TOP_OPERATORS = 10


def torch_operator_seconds(forward: Callable[[], object]) -> dict[str, float]:
    """Operator -> own CPU seconds of one ``forward`` under torch.profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        forward()
    return {event.key: event.self_cpu_time_total / 1e6 for event in profiler.key_averages()}


def onnxruntime_operator_seconds(session_for: Callable[[object], object], feed: dict) -> dict[str, float]:
    """Operator type -> seconds of its kernels in one run of a profiling onnxruntime session, after a warm-up run.

    Args:
        session_for (Callable): builds the session from the SessionOptions given (profiling switched on).
        feed (dict): the session's inputs.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.enable_profiling = True
    # onnxruntime writes its trace beside the prefix: a folder of our own, not the user's working directory
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = os.path.join(folder, 'onnxruntime_profile')
        session = session_for(options)
        for _ in range(2):
            session.run(None, feed)
        with open(session.end_profiling(), encoding='utf-8') as f:
            events = json.load(f)
    last_run = max(event['ts'] for event in events if event.get('name') == 'model_run')
    seconds = collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time') and event['ts'] >= last_run:
            seconds[event['args']['op_name']] += event['dur'] / 1e6
    return dict(seconds)


def by_kind(seconds: dict[str, float], kinds: dict[str, int]) -> dict[str, float]:
    """KINDS -> seconds: the operators of ``seconds`` summed by the kind ``kinds`` gives them (else 'other')."""
    totals = dict.fromkeys(KINDS, 0.0)
    for operator, value in seconds.items():
        totals[KINDS[kinds.get(operator, len(KINDS) - 1)]] += value
    return totals


def top(seconds: dict[str, float], count: int = TOP_OPERATORS) -> list[tuple[str, float]]:
    """The ``count`` operators taking the most time, slowest first."""
    return sorted(seconds.items(), key=lambda item: -item[1])[:count]
