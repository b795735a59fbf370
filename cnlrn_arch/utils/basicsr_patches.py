"""Overrides of basicsr 1.4.2 for CPU-only machines and for exact resumption.

basicsr 1.4.2 assumes a GPU in two places the ``basicsr`` runner passes through:
- ``basicsr.train.load_resume_state`` maps the state onto
  ``torch.cuda.current_device()``;
- ``basicsr.utils.options.init_dist`` always uses NCCL and picks the GPU as
  ``RANK % num_gpus`` (wrong across nodes, a division by zero on CPU).
DistributedDataParallel wrapping, the third place, is handled by
``CNLRNModel.model_to_device``.

And a resumed run of basicsr 1.4.2 replays its epoch from the start, with
other crops: :class:`ResumableSampler` skips the batches already trained on
and hands the data set its epoch, from which (with the seed) it derives each
sample's augmentation, so a resumed run sees the batches of an uninterrupted one.

The runner swaps these in as module attributes, looked up at call time;
site-packages stay untouched.
"""
import os
import subprocess
from collections import Counter

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import basicsr.train
import basicsr.utils.options
from basicsr.data.data_sampler import EnlargedSampler
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
    opt['resume_position'] = (resume_state['epoch'], resume_state['iter'])
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


class ResumableSampler(EnlargedSampler):
    """EnlargedSampler that tells the data set its epoch and can start an epoch part-way.

    Data sets with ``set_epoch`` receive positions in the enlarged epoch
    (they fold them into their range), so that each position keeps its own
    augmentation seed; others get indices as from EnlargedSampler.
    """

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.positions = hasattr(dataset, 'set_epoch')
        self.skip = {}  # epoch -> samples of it already trained on

    def resume_at(self, epoch, iteration, batch_size):
        """Skip, in ``epoch``, the batches trained before ``iteration`` (every epoch has the same length)."""
        batches_per_epoch = self.num_samples // batch_size  # the train loader drops the last partial batch
        self.skip = {epoch: (iteration - epoch * batches_per_epoch) * batch_size}

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if self.positions:
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        indices = list(super().__iter__()) if not self.positions else self._positions()
        return iter(indices[self.skip.get(self.epoch, 0):])

    def _positions(self):
        g = torch.Generator()
        g.manual_seed(self.epoch)
        return torch.randperm(self.total_size, generator=g).tolist()[self.rank:self.total_size:self.num_replicas]


def create_train_val_dataloader(opt, logger):
    """basicsr's, with the seed handed to the training set and the sampler placed at the resumed iteration."""
    opt['datasets']['train'].setdefault('seed', opt['manual_seed'])
    result = _basicsr_create_train_val_dataloader(opt, logger)
    train_sampler = result[1]
    if opt.get('resume_position') and isinstance(train_sampler, ResumableSampler):
        epoch, iteration = opt['resume_position']
        train_sampler.resume_at(epoch, iteration, opt['datasets']['train']['batch_size_per_gpu'])
        logger.info(f'Resuming inside epoch {epoch}: {train_sampler.skip[epoch]} samples already seen are skipped.')
    return result


_basicsr_create_train_val_dataloader = basicsr.train.create_train_val_dataloader


def apply():
    basicsr.train.load_resume_state = load_resume_state
    basicsr.train.EnlargedSampler = ResumableSampler
    basicsr.train.create_train_val_dataloader = create_train_val_dataloader
    basicsr.utils.options.init_dist = init_dist
