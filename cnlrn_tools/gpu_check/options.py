"""Option files for ``cnlrn gpu-check``: the project's own, with only sizes, iterations and devices changed."""

from __future__ import annotations

import os
from typing import Any

from cnlrn_base.option_file import deep_update, load_option_file, write_option_file
from cnlrn_base.project import SCALE, option_path

# PairedBlurSRDataset's dataroot_<key> -> the tiny data's folder of those frames
DATASET_ROOTS = {'gt': 'sharp', 'lq': 'blur_bicubic_X4', 'gt_lr': 'sharp_bicubic_X4'}


def project_options(name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The project's option file ``name`` (a path under ``options/``) as a dict, with ``changes`` merged in.

    Args:
        name (str): e.g. 'joint.yml'.
        changes (dict[str, Any]): see :func:`deep_update`.
    """
    return deep_update(load_option_file(option_path(name)), changes)


def derive_option_file(name: str, dst: str, changes: dict[str, Any]) -> str:
    """Write ``dst``: the project's option file ``name`` with ``changes`` merged in; return ``dst``.

    Args:
        name (str): e.g. 'joint.yml'.
        dst (str): the file to write; its folder is created.
        changes (dict[str, Any]): see :func:`deep_update`.
    """
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    write_option_file(project_options(name, changes), dst, f'options/{name}, changed by cnlrn gpu-check')
    return dst


def training_changes(
    data: dict[str, str], name: str, total_iter: int, num_gpu: int, validate: bool, lr_patch: int = 8, workers: int = 0
) -> dict[str, Any]:
    """Changes that make a training option file run ``total_iter`` iterations of batch 2 on the tiny data.

    Checkpoints every 2 iterations, a log line every iteration, no TensorBoard;
    validation on the tiny validation frames at the end when ``validate``, else none.

    Args:
        data (dict[str, str]): paths from :func:`~cnlrn_arch.data_prep.tiny_reds.make_tiny_reds`.
        name (str): the experiment's name (its folder under ``experiments/``).
        total_iter (int): iterations.
        num_gpu (int): 1 for CUDA, 0 for the CPU.
        validate (bool): validate after the last iteration.
        lr_patch (int): LR side of the training crops.
        workers (int): data loader workers.
    """
    loader = dict(
        {f'dataroot_{key}': data[f'train_{folder}'] for key, folder in DATASET_ROOTS.items()},
        num_worker_per_gpu=workers,
        batch_size_per_gpu=2,
        gt_size=SCALE * lr_patch,
    )
    val = {f'dataroot_{key}': data[f'val_{folder}'] for key, folder in DATASET_ROOTS.items()}
    return dict(
        name=name,
        num_gpu=num_gpu,
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False),
        datasets=dict(train=loader, val=val if validate else None),
        val=dict(val_freq=total_iter) if validate else None,
        train=dict(total_iter=total_iter, scheduler=dict(periods=[total_iter], restart_weights=[1])),
    )
