"""Distributed start-up for basicsr 1.4.2's ``--launcher pytorch|slurm``, on GPUs and on CPUs.

basicsr's ``init_dist`` always uses NCCL (no CPU training), picks the GPU as
``RANK % num_gpus`` (wrong across nodes, a division by zero on CPU) and keeps
torch's 10-minute collective timeout (see :mod:`cnlrn_arch.runtime.dist_timeout`).
DistributedDataParallel wrapping is handled by ``RobustSRModel.model_to_device``.
"""

import os
import subprocess
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cnlrn_arch.runtime.dist_timeout import DIST_TIMEOUT_MINUTES


def init_dist(
    launcher: str, backend: str = 'nccl', default_timeout_minutes: float = DIST_TIMEOUT_MINUTES, **kwargs: Any
) -> None:
    """Initialise torch.distributed: NCCL on the GPU of LOCAL_RANK, gloo for CPU tensors, a long timeout.

    Args:
        launcher (str): 'pytorch' (torchrun set the environment) or 'slurm' (derived from SLURM's).
        backend (str): the backend for CUDA tensors; CPU tensors always use gloo.
        default_timeout_minutes (float): the collective timeout unless ``timeout_minutes`` is passed
            (basicsr passes ``dist_params`` under slurm only).
        **kwargs (Any): ``port`` (slurm only: the master port), ``timeout_minutes``, the rest goes to
            ``init_process_group``.
    """
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if launcher == 'slurm':
        _slurm_environment(kwargs.pop('port', None))
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    timeout = timedelta(minutes=kwargs.pop('timeout_minutes', default_timeout_minutes))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        # CPU tensors (num_gpu: 0 on a GPU machine) still need gloo
        backend = f'cpu:gloo,cuda:{backend}'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, timeout=timeout, **kwargs)


def _slurm_environment(port: int | None) -> None:
    """Translate SLURM's variables into torch.distributed's (as basicsr does)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ['MASTER_ADDR'] = subprocess.getoutput(
        f'scontrol show hostname {os.environ["SLURM_NODELIST"]} | head -n1'
    )
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
