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


def load_resume_state(opt):
    """Pick the state to resume from and load it on the CPU (optimizers move it to the parameters' device)."""
    resume_state_path = None
    if opt['auto_resume']:
        state_path = os.path.join('experiments', opt['name'], 'training_states')
        if os.path.isdir(state_path):
            states = [int(v.split('.state')[0]) for v in scandir(state_path, suffix='state', recursive=False)]
            if states:
                resume_state_path = os.path.join(state_path, f'{max(states)}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
    if resume_state_path is None:
        return None
    resume_state = torch.load(resume_state_path, map_location='cpu', weights_only=True)
    check_resume(opt, resume_state['iter'])
    return resume_state


def init_dist(launcher, backend='nccl', **kwargs):
    """Initialise torch.distributed: NCCL on the GPU of LOCAL_RANK, gloo without CUDA."""
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if launcher == 'slurm':
        _slurm_environment(kwargs.pop('port', None))
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
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
