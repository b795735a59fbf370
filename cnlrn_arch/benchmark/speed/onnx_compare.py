"""onnxruntime against PyTorch on the CPU, side by side (``cnlrn bench --onnxruntime``).

One CNLRN with random weights (speed does not depend on their values) is
exported to ONNX; PyTorch (the default sdpa attention) and onnxruntime (the
exported graph, where attention is MatMul-Softmax-MatMul with the score
matrix written out) then run one LR frame in the same process with the same
threads, taking turns run by run, so that any drift of a shared machine
touches both alike. Writes ``onnxruntime.json``; :mod:`.report` adds its
section to RESULTS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from functools import partial
from os import path as osp

import torch
from tqdm import tqdm

from ...archs.cnlrn_arch import CNLRN
from ...export.onnx_file import export_onnx
from ...inference.onnx_backend import OnnxNetwork
from ...utils.machine import cpu_name
from ...utils.optional import import_optional
from .case import timed
from .report import ONNXRUNTIME_RESULTS, write_report


def compare_onnxruntime(
    command: str, out: str, config: dict, size: Sequence[int], runs: int = 3, threads: int | None = None
) -> dict:
    """Time ``runs`` forwards of PyTorch and of onnxruntime, alternating; write ``out``/onnxruntime.json and RESULTS.md.

    Args:
        command (str): the command line, recorded in the report.
        out (str): output folder.
        config (dict): CNLRN arguments overriding the released configuration.
        size (Sequence[int]): LR (height, width) of the frame, batch 1.
        runs (int): forwards of each; the median is reported, the first run included as warm-up.
        threads (int | None): threads of both (torch's and onnxruntime's intra-op pools); None: torch's default.

    Returns:
        dict: what onnxruntime.json holds.
    """
    ort = import_optional('onnxruntime', 'onnxruntime timings (cnlrn bench --onnxruntime)')
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = CNLRN(**config).eval()
    x = torch.rand(1, 3, *size)
    with tempfile.TemporaryDirectory() as folder:
        print('exporting to ONNX ...', flush=True)
        path = osp.join(folder, 'cnlrn.onnx')
        export_onnx(net, path)
        onnx_net = OnnxNetwork(path)  # holds the graph in memory: the file may go
    cpu = torch.device('cpu')
    times = {'torch': [], 'onnxruntime': []}
    outputs = {}
    for _ in tqdm(range(runs), desc='runs', unit='run'):
        for name, network in (('torch', net), ('onnxruntime', onnx_net)):
            with torch.inference_mode():
                (seconds,), outputs[name] = timed(partial(network, x), 1, cpu)
            times[name].append(seconds)
    result = {
        'command': command,
        'device': f'{cpu_name()} ({os.cpu_count()} cores)',
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'onnxruntime': ort.__version__,
        'config': config,
        'size': list(size),
        'output_shape': list(outputs['torch'].shape),
        'times_s': times,
        'median_s': {name: statistics.median(values) for name, values in times.items()},
        # each turn's two runs share the machine's load of the moment: their ratio is the steadier measure
        'turn_ratios': [ort_s / torch_s for torch_s, ort_s in zip(times['torch'], times['onnxruntime'])],
        'max_abs_difference': (outputs['onnxruntime'] - outputs['torch']).abs().max().item(),
    }
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, ONNXRUNTIME_RESULTS), 'w') as f:
        json.dump(result, f, indent=1)
    print('\n'.join(write_report(out)))
    return result
