"""CNLRN, its ablations and the paper's baselines on an equal budget (``cnlrn bench-quality``).

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

import os
import time
from os import path as osp

import basicsr
import torch

from ...evaluation import read_val, score, val_inputs
from ...inference.network import resolve_device
from ...project import DEMO_JOINT, TRIPLE_SETS
from ...utils.errors import UserError
from ...utils.machine import cpu_name
from . import report
from .train import demo_training, quiet_basicsr, run_variant
from .variants import BICUBIC_PAPER, BY_NAME, VARIANTS, load_option, pretrain_iterations

DEFAULT_ITERS = 450  # about 30 min on a 2-core CPU with 2 threads (see the README)


def check_data(data):
    needed = [f'train_{s}.lmdb' for s in TRIPLE_SETS] + [osp.join('val', s) for s in TRIPLE_SETS[:2]]
    missing = [n for n in needed if not osp.isdir(osp.join(data, n))]
    if missing:
        raise UserError(f'no demo data in {data} (missing {missing[0]}): run `cnlrn make-demo-data --out {data}` first')
    with open(osp.join(data, 'README.txt'), encoding='utf-8') as f:
        return f.readline().strip()


def machine(device):
    return dict(
        cpu=cpu_name(),
        cpus=os.cpu_count(),
        threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS', 'unset'),
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        torch=torch.__version__,
        basicsr=basicsr.__version__,
    )


def settings(iters, data, data_header):
    demo = load_option(DEMO_JOINT)['train']
    return dict(
        demo_training(),
        iters=iters,
        data=data,
        data_header=data_header,
        lr=demo['optim_g']['lr'],
        lr_deblur=demo['optim_g']['lr_deblur'],
        eta_min=demo['scheduler']['eta_min'],
        pretrain_iters=pretrain_iterations(BY_NAME['cnlrn'], iters),
    )


def run_quality_benchmark(
    command, out, data, variants=tuple(BY_NAME), iters=DEFAULT_ITERS, device='auto', report_only=False
):
    """Train and score ``variants``; write quality.json, QUALITY.md and quality.png to ``out``.

    Args:
        command (str): the command line, recorded in the report.
        out (str): output folder.
        data (str): demo data made by ``cnlrn make-demo-data``.
        variants (list[str]): names of the variants to train (keys of BY_NAME), in VARIANTS' order.
        iters (int): training iterations of every variant.
        device (str): 'auto', 'cpu' or 'cuda'.
        report_only (bool): rewrite QUALITY.md and quality.png from ``out``/quality.json without training.
    """
    if report_only:
        if not osp.isfile(osp.join(out, report.JSON)):
            raise UserError(f'--report-only: no {report.JSON} in {out}; run without --report-only first')
        print_written(*report.write_report(report.read_json(out), out))
        return
    start = time.time()
    data_header = check_data(data)
    device = resolve_device(device)
    quiet_basicsr()
    names, sharp, blurry, bicubic = read_val(osp.join(data, 'val'))
    val = val_inputs(blurry), sharp
    bicubic_psnr, bicubic_ssim = score(bicubic, sharp)
    print(f'{len(names)} held-out images; bicubic: {bicubic_psnr:.2f} dB, SSIM {bicubic_ssim:.4f}', flush=True)
    rows = []
    chosen = [v for v in VARIANTS if v.name in variants]
    for i, variant in enumerate(chosen, 1):
        row = run_variant(variant, iters, data, val, device)
        rows.append(row)
        print(
            f'[{i}/{len(chosen)}] {variant.label}: {row["psnr"]:.2f} dB, SSIM {row["ssim"]:.4f}, '
            f'{row["params"] / 1e6:.2f} M parameters, training {row["train_s"]:.0f} s, '
            f'inference {1000 * row["infer_s"]:.0f} ms / image',
            flush=True,
        )
    result = dict(
        command=command,
        date=time.strftime('%Y-%m-%d'),
        wall_s=time.time() - start,
        machine=machine(device),
        settings=settings(iters, data, data_header),
        val=dict(count=len(names), names=names, lr_size='x'.join(map(str, blurry[0].shape[:2]))),
        bicubic=dict(psnr=bicubic_psnr, ssim=bicubic_ssim, paper=BICUBIC_PAPER),
        rows=rows,
    )
    os.makedirs(out, exist_ok=True)
    report.write_json(result, out)
    print_written(osp.join(out, report.JSON), *report.write_report(result, out))


def print_written(*paths):
    print('written: ' + ', '.join(paths))
