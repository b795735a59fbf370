"""``cnlrn bench``: CNLRN's speed and memory against the machine's FLOP floor.

Inference (one forward at batch 1) at each LR size, with the default fused
attention and with the explicit score-matrix attention of the authors'
release side by side; one training step (forward, L1, backward, Adam) for
both; bf16 autocast where the hardware computes in bf16. On CPU the PSNR
change of bf16 is measured on the demo validation images in any case (the
rounding is the same where it is emulated, only far slower). Every case runs in a fresh process so that
its memory is its own. Prints the tables and writes RESULTS.md,
results_<device>.json and speed.png to --out.
"""
import json
import os
import shlex
import subprocess
import sys
from os import path as osp

import torch
from tqdm import tqdm

from ..benchmark.bf16_quality import bf16_psnr_change
from ..benchmark.flops import MATMUL_SIZE, count_flops, floor_seconds, matmul_peak
from ..benchmark.report import size_label, write_report
from ..utils.errors import UserError
from ..utils.image_formats import int_at_least
from ..utils.machine import cpu_name

DEFAULT_SIZES = ('90x160', '180x320', '360x640')
# a REDS frame: when benchmarked (else the first size), profiled and run in bf16 too
MAIN_SIZE = '180x320'
CASE_BUDGET_S = 150
# the release's naive path holds scores, scaled scores and probabilities of one head: 3 N^2 floats
NAIVE_COPIES = 3


def lr_size(text):
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise UserError(f'--sizes: {text!r} is not HEIGHTxWIDTH, e.g. 180x320') from None
    if height < 1 or width < 1:
        raise UserError(f'--sizes: {text!r} needs positive sides')
    return height, width


def add_parser(subparsers):
    parser = subparsers.add_parser('bench', help="measure CNLRN's speed and memory against the FLOP floor",
                                   description=__doc__.split('\n', 2)[2])
    parser.add_argument('--sizes', nargs='+', default=list(DEFAULT_SIZES), metavar='HxW',
                        help='LR input sizes for inference (default: %(default)s)')
    parser.add_argument('--runs', type=int_at_least(1), default=3,
                        help=f'forwards per case (default: %(default)s); fewer, down to one, where the FLOP floor '
                        f'says they would take more than {CASE_BUDGET_S} s')
    parser.add_argument('--train-size', default='64x64', metavar='HxW', help='LR patch of the training step')
    parser.add_argument('--train-batch', type=int_at_least(1), default=2, help='batch of the training step')
    parser.add_argument('--no-training', action='store_true', help='skip the training-step cases')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--threads', type=int_at_least(1), help='torch threads (default: torch chooses)')
    parser.add_argument('--config', default='{}', metavar='JSON',
                        help='CNLRN arguments overriding the released configuration, e.g. \'{"n_feats": 32}\'')
    parser.add_argument('--matmul-size', type=int_at_least(64), default=MATMUL_SIZE,
                        help='side of the square matmul that measures the peak (default: %(default)s)')
    parser.add_argument('--out', default='benchmarks', help='folder for RESULTS.md (default: %(default)s)')
    parser.set_defaults(func=bench)


def bf16_native(device):
    """Whether ``device`` computes bf16 in hardware (on CPU: oneDNN's check for AVX512-BF16 or AMX)."""
    if device == 'cuda':
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def naive_too_big(config, size, device):
    """None, or why the explicit score matrices of one head cannot fit on ``device``."""
    patch = min(config.get('nonlocal_psize', (4,)))
    tokens = (2 * size[0] // patch) * (2 * size[1] // patch)  # the largest attention runs at 2x
    needed = NAIVE_COPIES * tokens**2 * 4
    available = (torch.cuda.get_device_properties(0).total_memory if device == 'cuda'
                 else os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
    if needed > 0.8 * available:
        return f'score matrices need {needed / 1e9:.0f} GB'
    return None


def run_case(case):
    """Run one case in a fresh interpreter; its JSON result merged into ``case``."""
    command = [sys.executable, '-m', 'cnlrn_arch.benchmark.case', json.dumps(case)]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        reason = 'killed (out of memory?)' if result.returncode < 0 else result.stderr.strip().splitlines()[-1:]
        return dict(case, error=str(reason))
    return dict(case, **json.loads(lines[-1]))


def plan(args, config):
    base = {'config': config, 'device': args.device, 'threads': args.threads, 'runs': args.runs}
    main_size = lr_size(MAIN_SIZE if MAIN_SIZE in args.sizes else args.sizes[0])
    cases = []
    for size in map(lr_size, args.sizes):
        for impl in ('sdpa', 'naive'):
            case = dict(base, kind='inference', impl=impl, size=size, batch=1, precision='fp32')
            too_big = naive_too_big(config, size, args.device) if impl == 'naive' else None
            cases.append(dict(case, error=too_big) if too_big else case)
            if impl == 'sdpa' and size == main_size:
                case['profile'] = True  # where the time goes, operator by operator
    # emulated bf16 (e.g. a CPU with AVX2 only) runs its matmuls ~100x slower: no point timing it
    bf16 = bf16_native(args.device)
    if bf16:
        cases.append(dict(base, kind='inference', impl='sdpa', size=main_size, batch=1, precision='bf16'))
    if not args.no_training:
        training = dict(base, kind='training', size=lr_size(args.train_size), batch=args.train_batch)
        cases += [dict(training, impl=impl, precision='fp32') for impl in ('sdpa', 'naive')]
        if bf16:
            cases.append(dict(training, impl='sdpa', precision='bf16'))
    return cases


def bench(args):
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as err:
        raise UserError(f'--config: not JSON: {err}') from None
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda: CUDA is not available here')
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = plan(args, config)
    precisions = {'fp32': torch.float32} | ({'bf16': torch.bfloat16} if any(
        c['precision'] == 'bf16' for c in cases) else {})
    print(f'matmul peak ({args.matmul_size}^2) ...', flush=True)
    peaks = {name: matmul_peak(dtype, args.device, args.matmul_size) for name, dtype in precisions.items()}
    size_flops = {size_label(s): count_flops(config, s) for s in map(lr_size, args.sizes)}
    results = []
    for case in tqdm(cases, desc='cases', unit='case'):
        if case['kind'] == 'training':
            # backward costs about twice the forward
            flops = 3 * count_flops(config, case['size'], case['batch'])['total']
        else:
            flops = size_flops[size_label(case['size'])]['total']
        case['runs'] = max(1, min(args.runs, int(CASE_BUDGET_S // floor_seconds(flops, peaks[case['precision']]))))
        result = case if 'error' in case else run_case(case)
        results.append(dict(result, flops=flops))
        tqdm.write(summary(result))
    device = torch.cuda.get_device_name(0) if args.device == 'cuda' else f'{cpu_name()} ({os.cpu_count()} cores)'
    run = {'device': device, 'device_short': args.device, 'command': 'cnlrn bench ' + shlex.join(sys.argv[2:]),
           'torch': torch.__version__, 'threads': args.threads or torch.get_num_threads(), 'runs': args.runs,
           'matmul_size': args.matmul_size, 'peak_gflops': peaks, 'config': config,
           'bf16_native': bf16_native(args.device), 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
           'flops': size_flops,
           'cases': results}
    if args.device == 'cpu':
        print('bf16 quality on the demo validation images ...', flush=True)
        run['bf16_quality'] = bf16_psnr_change()
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, f'results_{args.device}.json'), 'w') as f:
        json.dump(run, f, indent=1)
    print('\n'.join(write_report(args.out)))
    return 0


def summary(result):
    name = f"{result['kind']} {result['impl']} {result['precision']} {size_label(result['size'])}"
    if 'error' in result:
        return f"{name}: not run: {result['error']}"
    return f"{name}: {result['median_s']:.2f} s, {result['activation_bytes'] / 1e9:.3f} GB"
