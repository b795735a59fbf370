"""Probes of ``cnlrn gpu-check`` on speed: training steps at the release's sizes, and the data loader alone.

Training goes through the model ``basicsr train`` builds from the project's
option files (its optimizer, losses, finiteness guard and precision options),
on batches already on the device, so the time is the step's own; the data
loader is measured apart, at the shipped worker count, against what the
step consumes.
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import time
from typing import Any

import torch
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models import build_model

from cnlrn_arch.data_prep.tiny_reds import make_tiny_reds
from cnlrn_arch.runtime.speed import AMP_DTYPES
from cnlrn_base.option_file import deep_update
from cnlrn_base.project import SCALE
from cnlrn_tools.gpu_check.findings import Findings, rounded
from cnlrn_tools.gpu_check.options import project_options
from cnlrn_tools.hardware.flops import floor_seconds, training_flops
from cnlrn_tools.hardware.gemm_peak import measure_network_peaks, peak_of

OPTION_FILES = {'pretrain': 'pretrain.yml', 'joint': 'joint.yml'}
# the paper's schedule: iterations of each stage
PAPER_ITERATIONS = {'pretrain': 600_000, 'joint': 1_000_000}
SCHEDULE = 'paper schedule on one GPU (600k pretrain + 1M joint iterations)'


def training_options(stage: str, precision: str, args: dict[str, Any]) -> dict[str, Any]:
    """The options ``basicsr train`` hands CNLRNModel for ``stage``'s option file, device and precision set.

    Args:
        stage (str): 'pretrain' or 'joint'.
        precision (str): 'fp32', 'tf32' or 'bf16'/'fp16' (autocast).
        args (dict[str, Any]): the probe's arguments: ``device`` and ``configs`` (stage -> network_g changes).
    """
    changes = dict(
        num_gpu=int(args['device'] == 'cuda'),
        network_g=args['configs'][stage],
        path=dict(pretrain_network_g=None, pretrain_network_deblur=None),
        train=dict(amp=precision if precision in AMP_DTYPES else None),
        speed=dict(tf32=precision == 'tf32'),
    )
    opt = project_options(OPTION_FILES[stage], changes)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    return opt


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_training(stage: str, precision: str, args: dict[str, Any], peaks: dict[str, float]) -> dict[str, Any]:
    """Seconds per iteration, images per second, peak memory and the ratio to the FLOP floor of one stage's step.

    Args:
        stage (str): 'pretrain' or 'joint'.
        precision (str): 'fp32', 'tf32' or 'bf16'/'fp16'.
        args (dict[str, Any]): the arguments of :func:`train_speed`.
        peaks (dict[str, float]): the GEMM peak (GFLOP/s) of each precision's cases.
    """
    device = torch.device(args['device'])
    opt = training_options(stage, precision, args)
    model = build_model(opt)
    batch, side = args['batch'], args['lr'][stage]
    target_side = side if model.target_key == 'gt_lr' else SCALE * side
    model.feed_data(
        {
            'lq': torch.rand(batch, 3, side, side, device=device),
            model.target_key: torch.rand(batch, 3, target_side, target_side, device=device),
        }
    )
    warmup, timed = args['iters']
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for it in range(1, warmup + 1):  # cuDNN's algorithm search, allocator growth
        model.optimize_parameters(it)
    times = []
    for it in range(warmup + 1, warmup + timed + 1):
        _synchronize(device)
        start = time.perf_counter()
        model.optimize_parameters(it)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    with torch.device('meta'):
        flops = training_flops(build_network(opt['network_g']), (batch, 3, side, side))
    measured = {
        's/iter': rounded(seconds),
        'images/s': rounded(batch / seconds),
        'x floor': rounded(seconds / floor_seconds(flops, peaks[precision])),
        'losses finite': all(math.isfinite(v) for v in model.get_current_log().values()),
    }
    if device.type == 'cuda':
        measured['peak GPU memory (GB)'] = rounded(torch.cuda.max_memory_allocated() / 1e9)
    else:
        measured['peak RSS of the process (GB)'] = rounded(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return measured


def train_speed(args: dict[str, Any], found: Findings) -> None:
    """Each stage's training step at the release's batch and patch in each precision; the paper's schedule at that.

    Args:
        args (dict[str, Any]): ``device``, ``configs`` (stage -> network_g changes; {}: the option file's),
            ``batch``, ``lr`` (stage -> LR patch side), ``precisions``, ``iters`` ((warm-up, timed)) and
            ``matmul_size`` (the square GEMM among those whose best rate is the floors' peak).
        found (Findings): receives each case's figures, the schedule and the joint stage's fastest images/s;
            a case faster than its floor fails the step on a GPU and is a finding on the CPU, where
            other work on the machine decides times (see :meth:`~.runner.Checks.timing`).
    """
    device = torch.device(args['device'])
    torch.backends.cudnn.benchmark = True  # as basicsr train sets it
    side = max(args['lr'].values())
    config = args['configs']['joint']
    rows = measure_network_peaks(args['precisions'], device.type, config, (side, side), args['matmul_size'])
    best = {p: peak_of(rows, p) for p in args['precisions']}
    peaks = {p: row['gflops'] for p, row in best.items()}
    found.figures['GEMM peak (GFLOP/s)'] = {
        p: f'{rounded(r["gflops"])} ({r["library"]}, {r["shape"]})' for p, r in best.items()
    }
    speeds = {}
    for stage in OPTION_FILES:
        for precision in args['precisions']:
            name = f'{stage} {precision} (batch {args["batch"]}, LR patch {args["lr"][stage]})'
            try:
                measured = time_training(stage, precision, args, peaks)
            except torch.OutOfMemoryError:
                found.figures[name] = 'out of memory'
                found.expect(False, f'{name}: out of memory')
                continue
            finally:
                gc.collect()
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
            found.figures[name] = measured
            speeds[stage, precision] = measured['s/iter']
            found.expect(measured['losses finite'], f'{name}: non-finite losses')
            found.timing(
                measured['x floor'] >= 1, f'{name}: faster than its FLOP floor, so the floor is wrong', device.type
            )
    schedule = {}
    for precision in args['precisions']:
        if all((stage, precision) in speeds for stage in OPTION_FILES):
            seconds = sum(PAPER_ITERATIONS[stage] * speeds[stage, precision] for stage in OPTION_FILES)
            schedule[precision] = f'{seconds / 3600:.0f} h ({seconds / 86400:.1f} days)'
    found.figures[SCHEDULE] = schedule
    joint = [speeds['joint', p] for p in args['precisions'] if ('joint', p) in speeds]
    if joint:
        found.figures['joint images/s, fastest precision'] = rounded(args['batch'] / min(joint))


def loader(args: dict[str, Any], found: Findings) -> None:
    """Samples per second of the joint stage's data loader alone, at the shipped worker count, against the need.

    Args:
        args (dict[str, Any]): ``frames`` (make_tiny_reds arguments of data made here; {}: use ``data``),
            ``root`` (where to make it), ``data`` (paths of data made before), ``changes`` (to the joint
            option file's datasets:train), ``batches`` (timed) and ``consumed_per_s`` (images per second
            the training step takes, or None).
        found (Findings): receives samples/s and, with ``consumed_per_s``, the ratio and a verdict.
    """
    paths = args.get('data')
    if args['frames']:
        start = time.perf_counter()
        paths = make_tiny_reds(args['root'], **args['frames'])
        found.figures['data made (s)'] = rounded(time.perf_counter() - start)
    opt = project_options('joint.yml', {})['datasets']['train']
    changes = dict(args['changes'], dataroot_gt=paths['train_sharp'], dataroot_lq=paths['train_blur_bicubic_X4'])
    opt = deep_update(opt, dict(changes, phase='train', scale=SCALE, seed=0))
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    batches = iter(build_dataloader(dataset, opt, num_gpu=1, dist=False, sampler=sampler, seed=0))
    start = time.perf_counter()
    next(batches)
    found.figures['first batch (s)'] = rounded(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(args['batches']):
        next(batches)
    rate = args['batches'] * opt['batch_size_per_gpu'] / (time.perf_counter() - start)
    found.figures.update(
        workers=opt['num_worker_per_gpu'],
        batch=opt['batch_size_per_gpu'],
        hr_patch=opt['gt_size'],
        pin_memory=opt.get('pin_memory', False),
        **{'samples/s': rounded(rate)},
    )
    consumed = args.get('consumed_per_s')
    if consumed:
        found.figures['training consumes (images/s)'] = consumed
        found.figures['loader / training'] = rounded(rate / consumed)
        workers = opt['num_worker_per_gpu']
        found.figures['verdict'] = (
            'the loader keeps up'
            if rate >= consumed
            else f'training would wait on data: {workers} workers give {rate / consumed:.0%} of what it consumes'
        )
