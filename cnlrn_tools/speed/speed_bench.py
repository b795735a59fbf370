"""CNLRN's speed and memory against the machine's FLOP floor (``cnlrn bench``).

Inference (one forward at batch 1) at each LR size, with the default fused
attention and with the explicit score-matrix attention of the authors'
release side by side; one training step (forward, L1, backward, Adam) for
both; bf16 autocast where the hardware computes in bf16, and with --tf32
(CUDA) float32 with TF32 convolutions and matmuls. Each case is measured
against the GEMM peak of its own precision (the best library and shape, see
:mod:`cnlrn_tools.hardware.gemm_peak`), and float32 cases run in IEEE
float32 (TF32 off), as ``speed: {tf32: false}`` trains. On CPU the PSNR
change of bf16 is measured on the demo validation images in any case (the
rounding is the same where it is emulated, only far slower). Every case runs in a fresh process so that
its memory is its own. Prints the tables and writes RESULTS.md,
results_<device>.json and speed.png to OUT.
"""

import json
import os
import subprocess
import sys
from os import path as osp

import torch
from tqdm import tqdm

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.runtime.speed import bf16_native
from cnlrn_base.command_defaults import CASE_BUDGET_S, MATMUL_SIZE
from cnlrn_base.errors import UserError
from cnlrn_tools.hardware.cpu import cpu_flags, cpu_name
from cnlrn_tools.hardware.flops import count_flops, cross_check, floor_seconds, size_label, training_flops
from cnlrn_tools.hardware.gemm_peak import best_of, measure_network_peaks, peak_of, peaks
from cnlrn_tools.speed.bf16_quality import bf16_psnr_change
from cnlrn_tools.speed.speed_report import write_report

DEFAULT_SIZES = ((90, 160), (180, 320), (360, 640))
# a REDS frame: when benchmarked (else the first size), profiled and run in bf16 too
MAIN_SIZE = (180, 320)
# the release's naive path holds scores, scaled scores and probabilities of one head: 3 N^2 floats
NAIVE_COPIES = 3


IMPLS = ('sdpa', 'naive')
# the order of the matmul peaks in the results
PRECISIONS = ('fp32', 'tf32', 'bf16')


def naive_too_big(config, size, device):
    """None, or why the explicit score matrices of one head cannot fit on ``device``."""
    patch = min(config.get('nonlocal_psize', (4,)))
    tokens = (2 * size[0] // patch) * (2 * size[1] // patch)  # the largest attention runs at 2x
    needed = NAIVE_COPIES * tokens**2 * 4
    available = (
        torch.cuda.get_device_properties(0).total_memory
        if device == 'cuda'
        else os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    )
    if needed > 0.8 * available:
        return f'score matrices need {needed / 1e9:.0f} GB'
    return None


def run_case(case):
    """Run one case in a fresh interpreter; its JSON result merged into ``case``."""
    command = [sys.executable, '-m', 'cnlrn_tools.speed.case', json.dumps(case)]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        reason = 'killed (out of memory?)' if result.returncode < 0 else result.stderr.strip().splitlines()[-1:]
        return dict(case, error=str(reason))
    return dict(case, **json.loads(lines[-1]))


def main_size(sizes):
    """The size of the profiled, bf16 and onnxruntime cases: MAIN_SIZE where ``sizes`` has it, else the first."""
    return MAIN_SIZE if MAIN_SIZE in sizes else sizes[0]


def plan(config, sizes, runs, train_size, train_batch, training, device, threads, tf32=False):
    """The cases to run, as dicts for :func:`run_case`; a case that cannot fit carries its ``error``.

    float32 at every size; TF32 (with ``tf32``) and bf16 (where native) at the main size; each with
    both attentions, and the training step with the default one in the extra precisions.
    """
    base = {'config': config, 'device': device, 'threads': threads, 'runs': runs}
    main = main_size(sizes)

    def inference(impl, size, precision):
        case = dict(base, kind='inference', impl=impl, size=size, batch=1, precision=precision)
        too_big = naive_too_big(config, size, device) if impl == 'naive' else None
        return dict(case, error=too_big) if too_big else case

    cases = []
    for size in sizes:
        for impl in IMPLS:
            case = inference(impl, size, 'fp32')
            if impl == 'sdpa' and size == main:
                case['profile'] = True  # where the time goes, operator by operator
            cases.append(case)
    # emulated bf16 (e.g. a CPU with AVX2 only) runs its matmuls ~100x slower: no point timing it
    extra = [p for p, wanted in (('tf32', tf32), ('bf16', bf16_native(device))) if wanted]
    cases += [inference(impl, main, precision) for precision in extra for impl in IMPLS]
    if training:
        train = dict(base, kind='training', size=train_size, batch=train_batch)
        cases += [dict(train, impl=impl, precision='fp32') for impl in IMPLS]
        cases += [dict(train, impl='sdpa', precision=precision) for precision in extra]
    return cases


def peak_precisions(cases):
    """The precisions whose matmul peak the ``cases`` are measured against, in PRECISIONS order."""
    used = {case['precision'] for case in cases}
    return [p for p in PRECISIONS if p in used]


def run_speed_benchmark(
    command,
    out,
    config,
    sizes=DEFAULT_SIZES,
    runs=3,
    train_size=(64, 64),
    train_batch=2,
    training=True,
    device='cpu',
    threads=None,
    matmul_size=MATMUL_SIZE,
    tf32=False,
):
    """Run every case of :func:`plan`; write results_<device>.json, RESULTS.md and speed.png to ``out``.

    Args:
        command (str): the command line, recorded in the report.
        out (str): output folder.
        config (dict): CNLRN arguments overriding the released configuration.
        sizes (list[tuple[int, int]]): LR (height, width) of the inference cases.
        runs (int): forwards per case, fewer where the FLOP floor says they would take over CASE_BUDGET_S.
        train_size (tuple[int, int]): LR patch of the training step.
        train_batch (int): batch of the training step.
        training (bool): whether to run the training-step cases.
        device (str): 'cpu' or 'cuda'.
        threads (int | None): torch threads, None to let torch choose.
        matmul_size (int): side of the square matmul among the GEMMs that measure the peak.
        tf32 (bool): also time float32 with TF32 convolutions and matmuls (CUDA only).
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda: CUDA is not available here')
    if tf32 and device != 'cuda':
        raise UserError('--tf32 needs --device cuda: TF32 is a mode of NVIDIA GPUs, the CPU computes float32 as such')
    if threads:
        torch.set_num_threads(threads)
    cases = plan(config, sizes, runs, train_size, train_batch, training, device, threads, tf32)
    precisions = peak_precisions(cases)
    print("GEMM peaks: every library, the network's shapes ...", flush=True)
    peak_rows = measure_network_peaks(precisions, device, config, main_size(sizes), matmul_size)
    case_peaks = peaks(peak_rows, precisions)
    size_flops = {size_label(s): count_flops(config, s) for s in sizes}
    # every training case has the same step
    if training:
        with torch.device('meta'):
            train_flops = training_flops(CNLRN(**config), (train_batch, 3, *train_size))
    else:
        train_flops = 0
    results = []
    for case in tqdm(cases, desc='cases', unit='case'):
        flops = train_flops if case['kind'] == 'training' else size_flops[size_label(case['size'])]['total']
        case['runs'] = max(1, min(runs, int(CASE_BUDGET_S // floor_seconds(flops, case_peaks[case['precision']]))))
        result = case if 'error' in case else run_case(case)
        results.append(dict(result, flops=flops))
        tqdm.write(summary(result))
    print('GEMM peaks again, the best of both kept ...', flush=True)
    peak_rows = best_of(peak_rows, measure_network_peaks(precisions, device, config, main_size(sizes), matmul_size))
    case_peaks = peaks(peak_rows, precisions)
    name = torch.cuda.get_device_name(0) if device == 'cuda' else f'{cpu_name()} ({os.cpu_count()} cores)'
    run = {
        'device': name,
        'device_short': device,
        'command': command,
        'torch': torch.__version__,
        'threads': threads or torch.get_num_threads(),
        'runs': runs,
        'matmul_size': matmul_size,
        'peak_gflops': case_peaks,
        'peak_set_by': {p: peak_of(peak_rows, p) for p in precisions},
        'gemm_peaks': peak_rows,
        'flop_cross_check': {size_label(s): cross_check(config, s) for s in sizes},
        'config': config,
        'bf16_native': bf16_native(device),
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'cpu_flags': cpu_flags(),
        'flops': size_flops,
        'cases': results,
    }
    if device == 'cpu':
        print('bf16 quality on the demo validation images ...', flush=True)
        run['bf16_quality'] = bf16_psnr_change()
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, f'results_{device}.json'), 'w') as f:
        json.dump(run, f, indent=1)
    print('\n'.join(write_report(out)))


def summary(result):
    name = f'{result["kind"]} {result["impl"]} {result["precision"]} {size_label(result["size"])}'
    if 'error' in result:
        return f'{name}: not run: {result["error"]}'
    return f'{name}: {result["median_s"]:.2f} s, {result["activation_bytes"] / 1e9:.3f} GB'
