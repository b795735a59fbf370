"""``cnlrn bench-quality``: CNLRN, its ablations and the paper's baselines on an equal budget.

Each variant (RCAN, RRDBNet, SRN+RCAN, CNLRN and the five ablations of
options/ablations) is its REDS option file scaled down to about the demo
CNLRN's parameter count, trained in this process for the same iterations with
the same batches, seed and learning rates on the demo data (train LMDBs), and
scored on its held-out tiles against bicubic upsampling. Written to OUT:
  QUALITY.md    the Table-1-style table (PSNR, SSIM, parameters, training and
                inference time, the paper's REDS numbers), the paper's ordering
                checked, the learning curves, and how it was run
  quality.png   PSNR per variant and the learning curves
  quality.json  the raw numbers; --report-only rewrites the other two from it
The default budget takes about half an hour on a 2-core CPU; raise --iters on a GPU.
"""
import argparse
import os
import shlex
import sys
import time
from os import path as osp

import torch

import basicsr
from ..inference.network import resolve_device
from ..utils.errors import UserError
from ..utils.image_formats import int_at_least
from ..utils.machine import cpu_name
from . import bench_quality_report as report
from . import demo_report
from .bench_quality_train import demo_training, quiet_basicsr, run_variant, val_inputs
from .bench_quality_variants import BICUBIC_PAPER, BY_NAME, VARIANTS, load_option, pretrain_iterations
from .make_demo_data import SETS

DEFAULT_ITERS = 450  # about 30 min on a 2-core CPU with 2 threads (see the README)
DATA = osp.join('datasets', 'demo')


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'bench-quality', help='train CNLRN, its ablations and the baselines on an equal budget; compare quality',
        description=__doc__.split('\n', 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int_at_least(2), default=DEFAULT_ITERS,
                        help='training iterations of every variant (default: %(default)s)')
    parser.add_argument('--variants', nargs='+', choices=list(BY_NAME), default=list(BY_NAME), metavar='NAME',
                        help=f'variants to train (default: all: {" ".join(BY_NAME)})')
    parser.add_argument('--data', default=DATA, help='demo data made by cnlrn make-demo-data (default: %(default)s)')
    parser.add_argument('--out', default='benchmarks', help='output folder (default: %(default)s)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='auto: CUDA when available (default: %(default)s)')
    parser.add_argument('--report-only', action='store_true',
                        help='rewrite QUALITY.md and quality.png from OUT/quality.json without training')
    parser.set_defaults(func=bench_quality)


def check_data(data):
    needed = [f'train_{s}.lmdb' for s in SETS] + [osp.join('val', s) for s in SETS[:2]]
    missing = [n for n in needed if not osp.isdir(osp.join(data, n))]
    if missing:
        raise UserError(f'no demo data in {data} (missing {missing[0]}): run `cnlrn make-demo-data --out {data}` first')
    with open(osp.join(data, 'README.txt'), encoding='utf-8') as f:
        return f.readline().strip()


def machine(device):
    return dict(cpu=cpu_name(), cpus=os.cpu_count(), threads=torch.get_num_threads(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS', 'unset'),
                device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
                torch=torch.__version__, basicsr=basicsr.__version__)


def settings(args, data_header):
    demo = load_option('demo/joint.yml')['train']
    return dict(demo_training(), iters=args.iters, data=args.data, data_header=data_header,
                lr=demo['optim_g']['lr'], lr_deblur=demo['optim_g']['lr_deblur'],
                eta_min=demo['scheduler']['eta_min'], pretrain_iters=pretrain_iterations(BY_NAME['cnlrn'], args.iters))


def bench_quality(args):
    if args.report_only:
        if not osp.isfile(osp.join(args.out, report.JSON)):
            raise UserError(f'--report-only: no {report.JSON} in {args.out}; run without --report-only first')
        print_written(*report.write_report(report.read_json(args.out), args.out))
        return 0
    start = time.time()
    data_header = check_data(args.data)
    device = resolve_device(args.device)
    quiet_basicsr()
    names, sharp, blurry, bicubic = demo_report.read_val(osp.join(args.data, 'val'))
    val = val_inputs(blurry), sharp
    bicubic_psnr, bicubic_ssim = demo_report.score(bicubic, sharp)
    print(f'{len(names)} held-out images; bicubic: {bicubic_psnr:.2f} dB, SSIM {bicubic_ssim:.4f}', flush=True)
    rows = []
    chosen = [v for v in VARIANTS if v.name in args.variants]
    for i, variant in enumerate(chosen, 1):
        row = run_variant(variant, args.iters, args.data, val, device)
        rows.append(row)
        print(f"[{i}/{len(chosen)}] {variant.label}: {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, "
              f"{row['params'] / 1e6:.2f} M parameters, training {row['train_s']:.0f} s, "
              f"inference {1000 * row['infer_s']:.0f} ms / image", flush=True)
    result = dict(
        command=shlex.join(['cnlrn'] + sys.argv[1:]), date=time.strftime('%Y-%m-%d'), wall_s=time.time() - start,
        machine=machine(device), settings=settings(args, data_header),
        val=dict(count=len(names), names=names, lr_size='x'.join(map(str, blurry[0].shape[:2]))),
        bicubic=dict(psnr=bicubic_psnr, ssim=bicubic_ssim, paper=BICUBIC_PAPER), rows=rows)
    os.makedirs(args.out, exist_ok=True)
    report.write_json(result, args.out)
    print_written(osp.join(args.out, report.JSON), *report.write_report(result, args.out))
    return 0


def print_written(*paths):
    print('written: ' + ', '.join(paths))
