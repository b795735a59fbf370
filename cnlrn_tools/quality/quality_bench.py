"""CNLRN, its ablations and the paper's baselines on an equal budget (``cnlrn bench-quality``).

Each variant (RCAN, RRDBNet, SRN+RCAN, SRN+RRDBNet, CNLRN, the GAN fine-tunes
ESRGAN and CNLRN-GAN, and the five ablations of options/ablations) is its REDS
option file scaled down to about the demo CNLRN's parameter count (full size
with --full-size), trained in this process, one after another on the same
device and threads, for the same wall time (--budget-s) or iterations
(--iters) with its own recipe's learning rate, schedule and losses, from
--seeds different seeds, and scored on held-out images against bicubic
upsampling. Data: the demo data (cnlrn make-demo-data) or a prepared REDS root
(cnlrn prepare-reds: training LMDBs, --val-frames of Val300). Written to OUT:
  QUALITY.md    the table (PSNR and SSIM as mean +- standard deviation over
                seeds, iterations done, parameters, times, the paper's Val300
                numbers), the recipes with their sources, which differences
                the spread resolves, the paper's ordering checked, how it was run
  quality.png   PSNR per method with error bars, and the learning curves
  quality.json  the raw numbers, per seed; --report-only rewrites the others from it
The default run (the main comparison at 3 seeds) takes under an hour on a 2-core CPU.
"""

import os
import time
from importlib.metadata import version
from os import path as osp

import numpy as np
import torch

from cnlrn_arch.inference.settings import resolve_device
from cnlrn_arch.options.vgg_weights import missing_vgg19_message, vgg19_weights
from cnlrn_arch.reports.scores import read_val, score, val_inputs
from cnlrn_base.command_defaults import QUALITY_BUDGET_S, QUALITY_DEFAULT_VARIANTS, QUALITY_GAN, QUALITY_SEEDS
from cnlrn_base.errors import UserError
from cnlrn_base.project import DEMO_JOINT, TRIPLE_SETS
from cnlrn_tools.hardware.cpu import cpu_name
from cnlrn_tools.quality import quality_report as report
from cnlrn_tools.quality.recipes import SWEEP_FACTORS, training_recipe
from cnlrn_tools.quality.stats import exact, summary
from cnlrn_tools.quality.train_variant import Budget, Setup, quiet_basicsr, run_variant
from cnlrn_tools.quality.variants import (
    BICUBIC_PAPER,
    GAN_SHARE,
    PRETRAIN_SHARE,
    VARIANTS,
    load_option,
    scaled_network,
    stage_count,
)

DEFAULT_BUDGET = Budget('s', QUALITY_BUDGET_S)
SWEEP_EVERY = 3  # --lr-sweep: every third held-out image picks the rates, the others score


def find_data(data):
    """(validation folder, one line describing the data) of demo data or a prepared REDS root."""
    reds = osp.isdir(osp.join(data, 'val300'))
    val = 'val300' if reds else 'val'
    needed = [f'train_{s}.lmdb' for s in TRIPLE_SETS] + [osp.join(val, s) for s in TRIPLE_SETS[:2]]
    missing = [n for n in needed if not osp.isdir(osp.join(data, n))]
    if missing:
        raise UserError(
            f'no demo data or prepared REDS in {data} (missing {missing[0]}): run `cnlrn make-demo-data --out {data}` '
            f'or `cnlrn prepare-reds --root {data}` first'
        )
    val = osp.join(data, val)
    if reds:
        return val, 'REDS prepared by `cnlrn prepare-reds`: Val300 frames'
    with open(osp.join(data, 'README.txt'), encoding='utf-8') as f:
        return val, f'`cnlrn make-demo-data`: {f.readline().strip()}'


def spread_pick(names, count):
    """``count`` of ``names`` spread evenly over them, first and last included (all when count is None)."""
    if count is None or count >= len(names):
        return list(names)
    return [names[int(i)] for i in np.linspace(0, len(names) - 1, count).round()]


def held_out_images(val_dir, val_frames, lr_sweep):
    """(scoring images, sweep images or None), each (names, sharp, blurry, bicubic) of the validation folder."""
    names, *images = read_val(val_dir)
    by_name = dict(zip(names, zip(*images)))
    sweep = names[SWEEP_EVERY - 1 :: SWEEP_EVERY] if lr_sweep else []
    scoring = spread_pick([n for n in names if n not in sweep], val_frames)

    def take(chosen):
        return (chosen, *map(list, zip(*(by_name[n] for n in chosen))))

    return take(scoring), take(sweep) if sweep else None


def machine(device):
    return dict(
        cpu=cpu_name(),
        cpus=os.cpu_count(),
        threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS', 'unset'),
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        torch=torch.__version__,
        basicsr=version('basicsr'),  # importing basicsr first would miss cnlrn_base.compat
    )


def make_setup(data, val, device, amp, full_size):
    """Batch, patch and augmentation: the demo's (``options/demo/joint.yml``), the release's at full size."""
    train = load_option('joint.yml' if full_size else DEMO_JOINT)['datasets']['train']
    return Setup(
        data,
        val,
        device,
        train['batch_size_per_gpu'],
        train['gt_size'],
        train['use_hflip'],
        train['use_rot'],
        amp,
        full_size,
    )


def sweep_rates(variant, budget, setup, seed):
    """(the --lr-sweep factor with the best PSNR on the sweep images, [{factor, psnr}] of every factor)."""
    tried = []
    for factor in SWEEP_FACTORS:
        tried.append(dict(factor=factor, psnr=run_variant(variant, budget, setup, seed, factor)['psnr']))
        print(f'  lr sweep {variant.label} x{factor:g}: {tried[-1]["psnr"]:.2f} dB', flush=True)
    return max(tried, key=lambda t: t['psnr'])['factor'], tried


def run_method(variant, budget, setup, seeds, lr_factor, sweep):
    """A row of quality.json: the variant, its recipe and its runs (one per seed)."""
    runs = [run_variant(variant, budget, setup, seed, lr_factor) for seed in seeds]
    return dict(
        name=variant.name,
        label=variant.label,
        group=variant.group,
        option=f'options/{variant.option}',
        network=scaled_network(variant, setup.full_size),
        params=runs[0]['params'],
        recipe=training_recipe(variant.option, variant.recipe),
        init_from=variant.init_from,
        lr_factor=lr_factor,
        sweep=sweep,
        paper=variant.paper,
        psnr=summary(r['psnr'] for r in runs),
        ssim=summary(r['ssim'] for r in runs),
        runs=runs,
    )


def run_quality_benchmark(
    command,
    out,
    data,
    variants=QUALITY_DEFAULT_VARIANTS,
    budget=DEFAULT_BUDGET,
    seeds=QUALITY_SEEDS,
    device='auto',
    amp=None,
    full_size=False,
    val_frames=None,
    lr_sweep=False,
    report_only=False,
):
    """Train and score ``variants``; write quality.json, QUALITY.md and quality.png to ``out``.

    Args:
        command (str): the command line, recorded in the report.
        out (str): output folder.
        data (str): demo data made by ``cnlrn make-demo-data`` or a REDS root prepared by ``cnlrn prepare-reds``.
        variants (list[str]): names of the variants to train (keys of BY_NAME), in VARIANTS' order; the GAN
            fine-tunes are left out, and the report says so, when VGG19's weights are missing.
        budget (Budget): the training budget of every variant and seed, iterations or seconds.
        seeds (int): runs per variant, seeds 0 to seeds - 1.
        device (str): 'auto', 'cpu' or 'cuda'.
        amp (str | None): 'bf16' to autocast training and inference.
        full_size (bool): networks, batch and patch as the REDS option files have them.
        val_frames (int | None): score on this many of the held-out images, spread evenly; None: all.
        lr_sweep (bool): first try SWEEP_FACTORS times each recipe's rates (seed 0) and keep the best on
            every third held-out image, which is then not scored.
        report_only (bool): rewrite QUALITY.md and quality.png from ``out``/quality.json without training.
    """
    if report_only:
        if not osp.isfile(osp.join(out, report.JSON)):
            raise UserError(f'--report-only: no {report.JSON} in {out}; run without --report-only first')
        result = report.read_json(out)
        if result.get('format') != report.FORMAT:
            raise UserError(
                f'--report-only: {osp.join(out, report.JSON)} was written by an older cnlrn bench-quality '
                f'(format {result.get("format", 1)}, this one reads {report.FORMAT}): run without --report-only'
            )
        print_written(*report.write_report(result, out))
        return
    start = time.time()
    val_dir, data_header = find_data(data)
    device = resolve_device(device)
    quiet_basicsr()
    (names, sharp, blurry, bicubic), sweep_images = held_out_images(val_dir, val_frames, lr_sweep)
    setup = make_setup(data, (val_inputs(blurry), sharp), device, amp, full_size)
    bicubic_psnr, bicubic_ssim = score(bicubic, sharp)
    print(f'{len(names)} held-out images; bicubic: {bicubic_psnr:.2f} dB, SSIM {bicubic_ssim:.4f}', flush=True)
    chosen = [v for v in VARIANTS if v.name in variants]
    gan_note = None
    if any(v.name in QUALITY_GAN for v in chosen) and vgg19_weights() is None:
        chosen = [v for v in chosen if v.name not in QUALITY_GAN]
        gan_note = f'ESRGAN and CNLRN-GAN left out: {missing_vgg19_message()}'
        print(gan_note, flush=True)
    for variant in chosen:
        if budget.unit == 'iters' and budget.amount < stage_count(variant):
            raise UserError(
                f'--iters {budget.amount:g}: {variant.name} trains in {stage_count(variant)} stages, '
                'at least one iteration each'
            )
    rows = []
    for i, variant in enumerate(chosen, 1):
        lr_factor, sweep = 1.0, None
        if sweep_images:
            sweep_setup = make_setup(data, (val_inputs(sweep_images[2]), sweep_images[1]), device, amp, full_size)
            lr_factor, sweep = sweep_rates(variant, budget, sweep_setup, 0)
        row = run_method(variant, budget, setup, range(seeds), lr_factor, sweep)
        rows.append(row)
        psnr, iters = row['psnr'], [r['iters'] for r in row['runs']]
        print(
            f'[{i}/{len(chosen)}] {variant.label}: {report.mean_std(psnr)} dB over {seeds} seed{"s" * (seeds > 1)}, '
            f'SSIM {report.mean_std(row["ssim"], 4)}, {row["params"] / 1e6:.2f} M parameters, '
            f'{"-".join(map(str, sorted({min(iters), max(iters)})))} iterations',
            flush=True,
        )
    result = dict(
        format=report.FORMAT,
        command=command,
        date=time.strftime('%Y-%m-%d'),
        wall_s=time.time() - start,
        machine=machine(device),
        settings=dict(
            budget=dict(unit=budget.unit, amount=budget.amount),
            seeds=seeds,
            data=data,
            data_header=data_header,
            batch=setup.batch,
            gt_size=setup.gt_size,
            amp=amp,
            full_size=full_size,
            pretrain_share=PRETRAIN_SHARE,
            gan_share=GAN_SHARE,
            pretrain_recipe=training_recipe('pretrain.yml'),
            lr_sweep=list(SWEEP_FACTORS) if lr_sweep else None,
            gan_note=gan_note,
        ),
        val=dict(
            count=len(names),
            names=names,
            sweep_names=sweep_images[0] if sweep_images else [],
            lr_size='x'.join(map(str, blurry[0].shape[:2])),
        ),
        bicubic=dict(psnr=exact(bicubic_psnr), ssim=exact(bicubic_ssim), paper=BICUBIC_PAPER),
        rows=rows,
    )
    os.makedirs(out, exist_ok=True)
    report.write_json(result, out)
    print_written(osp.join(out, report.JSON), *report.write_report(result, out))


def print_written(*paths):
    print('written: ' + ', '.join(paths))
