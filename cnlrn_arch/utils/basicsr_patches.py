"""Overrides that let basicsr 1.4.2's pipelines run without CUDA.

basicsr 1.4.2 assumes a GPU in two places the ``basicsr`` runner passes through:
- ``basicsr.train.load_resume_state`` maps the state onto
  ``torch.cuda.current_device()``;
- ``basicsr.utils.options.init_dist`` always uses NCCL and picks the GPU as
  ``RANK % num_gpus`` (wrong across nodes, a division by zero on CPU).
The runner swaps in the functions below (module attributes, looked up at
call time); site-packages stay untouched. DistributedDataParallel wrapping,
the third place, is handled by ``CNLRNModel.model_to_device``.
"""
import os
import subprocess
from collections import Counter

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import basicsr.train
import basicsr.utils.options
from basicsr.utils import check_resume, scandir

# MultiStepRestartLR keeps its milestones in a Counter
torch.serialization.add_safe_globals([Counter])


def _load_state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _newest_complete_state(opt):
    """(path, state) of the newest training state that loads and whose network checkpoint exists."""
    state_dir = opt['path']['training_states']
    if not os.path.isdir(state_dir):
        return None, None
    names = [v for v in scandir(state_dir, suffix='.state', recursive=False) if v[:-len('.state')].isdigit()]
    for name in sorted(names, key=lambda v: int(v[:-len('.state')]), reverse=True):
        path = os.path.join(state_dir, name)
        network = os.path.join(opt['path']['models'], f"net_g_{name[:-len('.state')]}.pth")
        if not os.path.isfile(network):
            print(f'auto_resume: skipping {path}: its network checkpoint {network} is missing', flush=True)
            continue
        try:
            return path, _load_state(path)
        except Exception as err:  # a truncated or corrupt file: fall back to an older one
            print(f'auto_resume: skipping {path}: unreadable ({str(err).splitlines()[0]})', flush=True)
    return None, None


def load_resume_state(opt):
    """Pick the state to resume from and load it on the CPU (optimizers move it to the parameters' device).

    With ``--auto_resume`` the newest complete state is used; incomplete ones
    are named and skipped.
    """
    if opt['auto_resume']:
        path, resume_state = _newest_complete_state(opt)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    elif opt['path'].get('resume_state'):
        resume_state = _load_state(opt['path']['resume_state'])
    else:
        return None
    check_resume(opt, resume_state['iter'])
    # our checkpoints keep weights under 'params'; check_resume only fixes 'params_ema'
    for key in opt:
        if key.startswith('network_'):
            opt['path'][f"param_key_{key[len('network_'):]}"] = 'params'
    return resume_state


def init_dist(launcher, backend='nccl', **kwargs):
    """Initialise torch.distributed: NCCL on the GPU of LOCAL_RANK, gloo for CPU tensors."""
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if launcher == 'slurm':
        _slurm_environment(kwargs.pop('port', None))
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        # CPU tensors (num_gpu: 0 on a GPU machine) still need gloo
        backend = f'cpu:gloo,cuda:{backend}'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)


def _slurm_environment(port):
    """Translate SLURM's variables into torch.distributed's (as basicsr does)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ['MASTER_ADDR'] = subprocess.getoutput(
        f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))


def apply():
    basicsr.train.load_resume_state = load_resume_state
    basicsr.utils.options.init_dist = init_dist
