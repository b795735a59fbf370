"""onnxruntime against PyTorch on the CPU, side by side, against the floor (``cnlrn bench --onnxruntime``).

One CNLRN with random weights (speed does not depend on their values) is
exported to ONNX; PyTorch (the path ``cnlrn infer`` and ``basicsr test`` run: the network
prepared by :class:`~cnlrn_arch.inference.settings.InferenceSettings`,
channels-last on the CPU), PyTorch as before (NCHW weights) and onnxruntime
(the exported graph, where attention is MatMul-Softmax-MatMul with the score
matrix written out) then run LR frames of each size with the same threads,
taking turns run by run, so that any drift of a shared machine touches all
alike. The GEMM peak is measured in
the same process (:mod:`.gemm_peak`), so each runtime's time stands beside
the floor; one more forward of each at the largest size is profiled
operator by operator (:mod:`.operator_profile`). Writes ``onnxruntime.json``;
:mod:`.report` adds its section to RESULTS.md.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from functools import partial
from os import path as osp

import torch
from tqdm import tqdm

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.inference.onnx_backend import OnnxNetwork
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.weights.onnx_file import INPUT_NAME, export_onnx
from cnlrn_base.optional import import_optional
from cnlrn_tools.hardware.cpu import cpu_flags, cpu_name
from cnlrn_tools.hardware.flops import count_flops, cross_check, floor_seconds, size_label
from cnlrn_tools.hardware.gemm_peak import best_of, measure_network_peaks, peak_of
from cnlrn_tools.speed import operator_profile
from cnlrn_tools.speed.case import timed
from cnlrn_tools.speed.speed_report import NCHW, ONNXRUNTIME_RESULTS, write_report


def time_in_turns(networks: dict, x: torch.Tensor, runs: int) -> tuple[dict[str, list[float]], dict[str, torch.Tensor]]:
    """Seconds of ``runs`` forwards of each network on ``x``, taking turns; each one's output."""
    times = {name: [] for name in networks}
    outputs = {}
    for _ in tqdm(range(runs), desc=f'{size_label(x.shape[-2:])} runs', unit='run'):
        for name, network in networks.items():
            with torch.inference_mode():
                (seconds,), outputs[name] = timed(partial(network, x), 1, torch.device('cpu'))
            times[name].append(seconds)
    return times, outputs


def profiles(net: torch.nn.Module, config: dict, onnx_path: str, x: torch.Tensor) -> dict:
    """Per-operator seconds of one forward of each runtime on ``x`` (after a warm-up), raw and by kind."""
    import onnxruntime as ort

    with torch.inference_mode():
        net(x)
        torch_seconds = operator_profile.torch_operator_seconds(partial(net, x))
    ort_seconds = operator_profile.onnxruntime_operator_seconds(
        lambda options: ort.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider']),
        {INPUT_NAME: x.numpy()},
    )
    counted = cross_check(config, tuple(x.shape[-2:]))
    convolution = counted['FlopCounterMode: convolution'] * 1e12
    return {
        'size': list(x.shape[-2:]),
        # the work of the first two kinds, for their rates: convolutions, and every other product
        'flops': {
            operator_profile.KINDS[0]: convolution,
            operator_profile.KINDS[1]: counted['this count: total'] * 1e12 - convolution,
        },
        'torch': {
            'kinds': operator_profile.by_kind(torch_seconds, operator_profile.TORCH_KINDS),
            'top': operator_profile.top(torch_seconds),
        },
        'onnxruntime': {
            'kinds': operator_profile.by_kind(ort_seconds, operator_profile.ORT_KINDS),
            'top': operator_profile.top(ort_seconds),
        },
    }


def compare_onnxruntime(
    command: str,
    out: str,
    config: dict,
    sizes: Sequence[Sequence[int]],
    runs: int = 3,
    threads: int | None = None,
) -> dict:
    """Time ``runs`` forwards of PyTorch and onnxruntime at each size, in turns; write onnxruntime.json, RESULTS.md.

    Args:
        command (str): the command line, recorded in the report.
        out (str): output folder.
        config (dict): CNLRN arguments overriding the released configuration.
        sizes (Sequence[Sequence[int]]): LR (height, width) of the frames, batch 1.
        runs (int): forwards of each runtime per size; the median is reported, the first run included as warm-up.
        threads (int | None): threads of all (torch's and onnxruntime's intra-op pools); None: torch's default.

    Returns:
        dict: what onnxruntime.json holds.
    """
    ort = import_optional('onnxruntime', 'onnxruntime timings (cnlrn bench --onnxruntime)')
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = CNLRN(**config).eval()
    largest = max(sizes, key=lambda s: s[0] * s[1])
    print('GEMM peak ...', flush=True)
    peak_rows = measure_network_peaks(['fp32'], 'cpu', config, largest)
    result = {
        'command': command,
        'device': f'{cpu_name()} ({os.cpu_count()} cores)',
        'cpu_flags': cpu_flags(),
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'onnxruntime': ort.__version__,
        'config': config,
        'sizes': {},
    }
    with tempfile.TemporaryDirectory() as folder:
        print('exporting to ONNX ...', flush=True)
        path = osp.join(folder, 'cnlrn.onnx')
        export_onnx(net, path)
        default = InferenceSettings().prepare(copy.deepcopy(net))
        networks = {NCHW: net, 'torch': default, 'onnxruntime': OnnxNetwork(path)}
        for size in sizes:
            x = torch.rand(1, 3, *size)
            times, outputs = time_in_turns(networks, x, runs)
            flops = count_flops(config, size)['total']
            result['sizes'][size_label(size)] = {
                'output_shape': list(outputs['torch'].shape),
                'flops': flops,
                'times_s': times,
                'median_s': {name: statistics.median(values) for name, values in times.items()},
                # a turn's runs share the machine's load of the moment: their ratio is the steadier measure
                'turn_ratios': [o / t for t, o in zip(times['torch'], times['onnxruntime'])],
                'max_abs_difference': (outputs['onnxruntime'] - outputs['torch']).abs().max().item(),
                'max_abs_difference_to_before': (outputs[NCHW] - outputs['torch']).abs().max().item(),
            }
        print('GEMM peak again, the best of both kept ...', flush=True)
        peak = peak_of(best_of(peak_rows, measure_network_peaks(['fp32'], 'cpu', config, largest)), 'fp32')
        result['peak'] = peak
        for measured in result['sizes'].values():
            measured['floor_s'] = floor_seconds(measured['flops'], peak['gflops'])
        print(f'profiling one forward of each at {size_label(largest)} ...', flush=True)
        result['profile'] = profiles(default, config, path, torch.rand(1, 3, *largest))
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, ONNXRUNTIME_RESULTS), 'w') as f:
        json.dump(result, f, indent=1)
    print('\n'.join(write_report(out)))
    return result
