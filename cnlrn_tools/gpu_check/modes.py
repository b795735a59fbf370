"""What the GPU run and the CPU dry run of ``cnlrn gpu-check`` differ in: devices, sizes and iteration counts.

Everything else (the steps, their checks, the option files they start from)
is the same, so the dry run in CI keeps the GPU run's code working.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

# the pipeline's networks: as small as CNLRN and its pre-training network allow; mechanics, not quality
TINY_CNLRN = dict(
    type='CNLRN', n_deblur_blocks=1, n_nlrgs_body=1, n_nlrgs_up1=1, n_nlrgs_up2=1, n_subgroups=1, n_rcabs=1, n_feats=16
)
TINY_PREDEBLUR = dict(type='CNLRNPreDeblur', n_feats=16, n_deblur_blocks=1)
# the released configuration's attention (64 features, 4 heads of 4x4 patches: head dimension 256) on one block each
SMALL_HEAD_256 = dict(n_deblur_blocks=1, n_nlrgs_body=1, n_nlrgs_up1=1, n_nlrgs_up2=1, n_subgroups=1, n_rcabs=1)


@dataclass(frozen=True)
class Mode:
    """Devices and sizes of one kind of run; see :func:`gpu_mode` and :func:`dry_mode`."""

    dry_run: bool
    device: str  # where the networks run: 'cuda' or 'cpu'
    parallel: int  # steps run at the same time (exclusive steps, the timings, run alone)
    threads: str  # OMP_NUM_THREADS of the pipeline's processes, whose tensors are tiny
    sdpa_config: dict  # CNLRN arguments of the SDPA backend step ({}: the released network)
    sdpa_input: tuple[int, int, int]  # (batch, LR height, LR width) of that step
    infer_lr: int  # side of the LR photo ``cnlrn infer`` restores
    infer_tile: tuple[int, int]  # --tile and --tile-pad
    compile_backend: str  # of ``cnlrn infer --compile``
    bench_args: tuple[str, ...]  # ``cnlrn bench`` arguments besides --device and --out
    train_configs: dict  # stage -> network_g of the training-speed step ({}: the option file's)
    train_batch: int
    train_lr: dict  # stage -> LR patch side of the training-speed step
    train_precisions: tuple[str, ...]
    train_iters: tuple[int, int]  # (warm-up, timed) iterations per training-speed case
    matmul_size: int
    loader_frames: dict = field(default_factory=dict)  # make_tiny_reds arguments of the loader's own data ({}: none)
    loader_changes: dict = field(default_factory=dict)  # datasets:train changes of the loader step
    loader_batches: int = 15  # timed batches


def gpu_mode() -> Mode:
    """One GPU: the released network where speed or numerics are measured, tiny ones for the pipeline's mechanics."""
    return Mode(
        dry_run=False,
        device='cuda',
        parallel=max(2, min(6, (os.cpu_count() or 2) // 2)),
        threads='2',
        sdpa_config={},
        sdpa_input=(2, 64, 64),
        infer_lr=128,
        infer_tile=(64, 16),
        compile_backend='inductor',
        bench_args=('--sizes', '180x320', '--no-training', '--runs', '3', '--tf32'),
        train_configs={'pretrain': {}, 'joint': {}},
        train_batch=32,
        train_lr={'pretrain': 128, 'joint': 64},
        train_precisions=('fp32', 'tf32', 'bf16'),
        train_iters=(2, 3),
        matmul_size=8192,
        # REDS frames (720x1280), noisy enough that their PNGs cost what real frames cost to decode
        loader_frames=dict(clips=2, frames=4, hr_size=(720, 1280), val_frames=0, noise=6.0),
        loader_changes=dict(pin_memory=True, dataset_enlarge_ratio=100),
        loader_batches=15,
    )


def dry_mode() -> Mode:
    """The CPU, tiny sizes and 2-4 iterations: every step's code runs in about a minute on 2 cores."""
    return Mode(
        dry_run=True,
        device='cpu',
        parallel=3,  # one more than the cores: steps also wait (on sleeps, files, rendezvous)
        threads='1',
        sdpa_config=dict(SMALL_HEAD_256, n_feats=64),
        sdpa_input=(1, 8, 8),
        infer_lr=32,
        infer_tile=(16, 8),
        compile_backend='eager',  # inductor takes minutes on 2 cores; tests/test_models covers it
        bench_args=(
            *('--sizes', '8x12', '--no-training', '--runs', '1', '--matmul-size', '256', '--threads', '1'),
            *('--config', json.dumps({k: v for k, v in TINY_CNLRN.items() if k != 'type'})),
        ),
        train_configs={'pretrain': TINY_PREDEBLUR, 'joint': TINY_CNLRN},
        train_batch=2,
        train_lr={'pretrain': 16, 'joint': 16},
        train_precisions=('fp32', 'bf16'),
        train_iters=(1, 2),
        matmul_size=256,
        loader_changes=dict(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=1, dataset_enlarge_ratio=4),
        loader_batches=4,
    )
