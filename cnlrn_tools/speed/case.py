"""One benchmark case, run alone in a fresh process so its memory is its own.

The case is profiled (``"profile": true``) after it is measured, so the
profiler's overhead touches neither time nor memory.

``python -m cnlrn_tools.speed.case '<json>'`` prints one JSON line:
median wall time, activation memory and output shape. Activation memory on
CPU is the peak resident set after the timed work minus the peak after
imports, model construction and input creation; on CUDA it is
``max_memory_allocated`` minus the weights (and the optimizer state, for
training).

As ``basicsr train`` does, cuDNN benchmarks its convolution algorithms
(``cudnn.benchmark``), so bench and training time the same kernels; the
first run, which includes that search, counts as warm-up. A ``tf32`` case is
float32 with TF32 allowed, every other case runs with TF32 off. The profile
lists operators by their own GPU time on CUDA (CPU time there is launch
overhead) and by their own CPU time on the CPU.
"""

import json
import resource
import statistics
import sys
import time

import torch
from torch.autograd.profiler_util import FunctionEventAvg

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.runtime.speed import AMP_DTYPES, Speed, autocast, to_memory_format, use_tf32
from cnlrn_base.errors import UserError

PROFILE_ROWS = 12


def peak_rss_bytes():
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryProbe:
    """Peak memory above the level at construction, on CPU or CUDA."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.base = peak_rss_bytes()

    def peak_above_base(self):
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return peak_rss_bytes() - self.base


def timed(step, runs, device):
    """Wall times of ``runs`` calls of ``step`` (the first includes warm-up)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times, result


def run_case(case):
    device = torch.device(case.get('device', 'cpu'))
    if case.get('threads'):
        torch.set_num_threads(case['threads'])
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    use_tf32(case['precision'] == 'tf32')
    # in the memory order cnlrn infer, basicsr test and training run it in: channels-last on the CPU
    net = to_memory_format(CNLRN(**case['config'], attn_impl=case['impl']).to(device), Speed(), device)
    dtype = AMP_DTYPES.get(case['precision'])  # None: float32, with or without TF32
    height, width = case['size']
    x = torch.rand(case['batch'], 3, height, width, device=device)

    if case['kind'] == 'inference':
        net.eval()
        probe = MemoryProbe(device)

        def step():
            with torch.inference_mode(), autocast(device, dtype):
                return net(x)
    else:
        target = torch.rand(case['batch'], 3, 4 * height, 4 * width, device=device)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)  # as RobustSRModel builds it
        # Adam's state is allocated on the first step; keep it out of the activations
        for param in net.parameters():
            optimizer.state[param] = {
                'step': torch.tensor(0.0),
                'exp_avg': torch.zeros_like(param),
                'exp_avg_sq': torch.zeros_like(param),
            }
        probe = MemoryProbe(device)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                loss = torch.nn.functional.l1_loss(net(x).float(), target)
            loss.backward()
            optimizer.step()
            return loss.detach()

    times, result = timed(step, case['runs'], device)
    if not torch.isfinite(result).all():
        raise RuntimeError(f'non-finite output in case {case}')
    measured = {
        'median_s': statistics.median(times),
        'times_s': times,
        'activation_bytes': probe.peak_above_base(),
        'output_shape': list(result.shape) if case['kind'] == 'inference' else None,
    }
    if case.get('profile'):
        measured['profile'] = operator_profile(step, device)
    return measured


def profile_sort_key(device_type: str) -> str:
    """The profiler events' attribute of an operator's own time on ``device_type``: GPU time on CUDA, else CPU.

    torch 2.4 renamed ``self_cuda_time_total`` to ``self_device_time_total``; the
    events' own attributes tell which this torch has.

    Args:
        device_type (str): 'cpu' or 'cuda'.
    """
    if device_type != 'cuda':
        return 'self_cpu_time_total'
    return 'self_device_time_total' if hasattr(FunctionEventAvg(), 'self_device_time_total') else 'self_cuda_time_total'


def operator_profile(step, device, rows=PROFILE_ROWS):
    """torch.profiler's table of the operators taking the most time on ``device`` in one more ``step``."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    return profiler.key_averages().table(
        sort_by=profile_sort_key(device.type), row_limit=rows, max_name_column_width=48
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    case = json.loads(argv[0])
    try:
        result = run_case(case)
    except torch.OutOfMemoryError as err:
        raise UserError(f'out of memory: {err}') from err
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
