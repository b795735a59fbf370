"""Resuming a training: the state it goes on from, read once on the CPU, and a sampler that goes on mid-epoch.

basicsr 1.4.2 loads the state onto ``torch.cuda.current_device()`` (no GPU: an
error), takes the newest state under ``--auto_resume`` even when it is
truncated or its network checkpoint is missing, and replays a resumed epoch from
its start with other crops. Here a given ``path:resume_state`` is read and
checked once, before basicsr runs; ``--auto_resume`` takes the newest complete
state; and :class:`ResumableSampler` skips the batches already trained on and
hands the data set its epoch, from which (with the seed) it derives each
sample's augmentation, so a resumed run sees the batches of an uninterrupted one.
The model resumes its optimizers, schedulers and loss scale itself
(``RobustSRModel.resume_training``).
"""

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, make_exp_dirs, scandir
from torch.utils.data import Dataset

from cnlrn_base.errors import UserError, first_line

# what BaseModel.save_training_state writes; a network checkpoint (.pth) holds 'params' instead
TRAINING_STATE_KEYS = ('epoch', 'iter', 'optimizers', 'schedulers')

# MultiStepRestartLR keeps its milestones in a Counter, which training states are loaded with
torch.serialization.add_safe_globals([Counter])


def _load_state(path: str) -> dict[str, Any]:
    return torch.load(path, map_location='cpu', weights_only=True)


def read_training_state(state_path: Any, where: str) -> dict[str, Any]:
    """The training state ``path:resume_state`` names, on the CPU; a UserError unless it is one.

    Args:
        state_path (Any): the option's value.
        where (str): the option file, for the messages.

    Returns:
        dict[str, Any]: the state, as :meth:`BaseModel.save_training_state` wrote it.

    Raises:
        UserError: the value is not a path, the file is missing or unreadable, or it is no training state
            (a network checkpoint, say).
    """
    if not isinstance(state_path, str):
        raise UserError(f'{where}: path:resume_state must be the path of a training state, got {state_path!r}')
    state_path = os.path.expanduser(state_path)  # as basicsr's parse_options does
    if not os.path.isfile(state_path):
        raise UserError(f'{where}: path:resume_state: training state not found: {state_path}')
    try:
        state = _load_state(state_path)
    except Exception as err:  # truncated, not torch's, or objects weights_only refuses: the file, not a bug
        raise UserError(f'{where}: path:resume_state: cannot read {state_path}: {first_line(err)}') from None
    if not isinstance(state, dict) or not all(k in state for k in TRAINING_STATE_KEYS):
        raise UserError(
            f'{where}: path:resume_state: {state_path} is not a training state (experiments/<name>/'
            'training_states/<iter>.state); to start from network weights, set path:pretrain_network_g'
        )
    return state


def _tell(line: str) -> None:
    print(line, flush=True)


def newest_complete_state(
    opt: dict[str, Any], say: Callable[[str], None] | None = _tell
) -> tuple[str | None, dict[str, Any] | None]:
    """(path, state) of the experiment's newest training state that loads and whose network checkpoint exists.

    Args:
        opt (dict[str, Any]): the parsed options: ``path:training_states`` and ``path:models`` are read.
        say (Callable[[str], None] | None): told each state skipped and why; None: nothing is told.

    Returns:
        tuple[str | None, dict[str, Any] | None]: (None, None) when there is none.
    """
    state_dir = opt['path']['training_states']
    if not os.path.isdir(state_dir):
        return None, None
    names = [v for v in scandir(state_dir, suffix='.state', recursive=False) if v[: -len('.state')].isdigit()]
    for name in sorted(names, key=lambda v: int(v[: -len('.state')]), reverse=True):
        path = os.path.join(state_dir, name)
        network = os.path.join(opt['path']['models'], f'net_g_{name[: -len(".state")]}.pth')
        if not os.path.isfile(network):
            skipped = f'its network checkpoint {network} is missing'
        else:
            try:
                return path, _load_state(path)
            except Exception as err:  # a truncated or corrupt file: fall back to an older one
                skipped = f'unreadable ({first_line(err)})'
        if say is not None:
            say(f'auto_resume: skipping {path}: {skipped}')
    return None, None


def resume_from(opt: dict[str, Any], state: dict[str, Any]) -> None:
    """Point the parsed options at the networks of ``state`` (``path:resume_state``) and record where it stopped.

    Sets ``path:pretrain_network_*`` and ``path:param_key_*`` (basicsr's check_resume, with the networks
    beside the state and our 'params' key) and ``resume_position`` (epoch, iteration), which the sampler and
    the model's messages read; makes the experiment's folders when the state is another experiment's.

    Args:
        opt (dict[str, Any]): the parsed options, ``path:resume_state`` set.
        state (dict[str, Any]): the training state it names.
    """
    check_resume(opt, state['iter'])
    _networks_beside_state(opt, state['iter'])
    if not os.path.isdir(opt['path']['experiments_root']):
        # a state of another experiment resumed under this name: basicsr makes the folders only for new runs
        make_exp_dirs(opt)
    opt['resume_position'] = (state['epoch'], state['iter'])
    # our checkpoints keep weights under 'params'; check_resume only fixes 'params_ema'
    for key in opt:
        if key.startswith('network_'):
            opt['path'][f'param_key_{key[len("network_") :]}'] = 'params'


def _networks_beside_state(opt: dict[str, Any], resume_iter: int) -> None:
    """Resume the networks from the experiment that wrote ``path:resume_state``.

    basicsr's check_resume looks for them in this experiment's ``models``
    folder, which holds nothing when a state is resumed under another name.
    """
    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(opt['path']['resume_state']))), 'models')
    for key in opt:
        if not key.startswith('network_'):
            continue
        name = f'net_{key[len("network_") :]}_{resume_iter}.pth'
        set_by_check_resume = opt['path'].get(f'pretrain_{key}') == os.path.join(opt['path']['models'], name)
        if set_by_check_resume and os.path.isfile(os.path.join(models, name)):
            opt['path'][f'pretrain_{key}'] = os.path.join(models, name)


def what_training_left(opt: dict[str, Any]) -> str:
    """Where a stopped training can go on from, read from the experiment folder: for the Ctrl-C line.

    Args:
        opt (dict[str, Any]): the parsed options of the run.

    Returns:
        str: the last complete checkpoint and its iteration, and how to resume; or that there is none.
    """
    path, state = newest_complete_state(opt, say=None)
    if path is None:
        return 'no checkpoint saved yet'
    checkpoint = os.path.join(opt['path']['models'], f'net_g_{state["iter"]}.pth')
    return f'last complete checkpoint: {checkpoint}, iter {state["iter"]} (resume with --auto_resume)'


class ResumableSampler(EnlargedSampler):
    """EnlargedSampler that tells the data set its epoch and can start an epoch part-way.

    Data sets with ``set_epoch`` receive (epoch, position) pairs, positions in
    the enlarged epoch (they fold them into their range), so that each position
    keeps its own augmentation seed; others get indices as from EnlargedSampler.

    Args:
        dataset (Dataset): the data set sampled from.
        num_replicas (int): number of processes training (the world size).
        rank (int): this process's rank among them.
        ratio (int): how many times an epoch goes over the data set.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, ratio: int = 1) -> None:
        super().__init__(dataset, num_replicas, rank, ratio)
        self.positions = hasattr(dataset, 'set_epoch')
        self.skip: dict[int, int] = {}  # epoch -> samples of it already trained on

    def resume_at(self, epoch: int, iteration: int, batch_size: int) -> None:
        """Skip, in ``epoch``, the batches trained before ``iteration`` (every epoch has the same length).

        Args:
            epoch (int): the epoch the training state was saved in.
            iteration (int): the iteration it was saved after, counted from the start of training.
            batch_size (int): samples per batch on this process.
        """
        batches_per_epoch = self.num_samples // batch_size  # the train loader drops the last partial batch
        self.skip = {epoch: (iteration - epoch * batches_per_epoch) * batch_size}

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        samples = list(super().__iter__()) if not self.positions else self._positions()
        return iter(samples[self.skip.get(self.epoch, 0) :])

    def _positions(self) -> list[tuple[int, int]]:
        """(epoch, position) pairs: the epoch travels with each index, so data loader workers that persist across
        epochs (``persistent_workers: true``), each with its own copy of the data set, augment for the right one."""
        g = torch.Generator()
        g.manual_seed(self.epoch)
        positions = torch.randperm(self.total_size, generator=g).tolist()[
            self.rank : self.total_size : self.num_replicas
        ]
        return [(self.epoch, position) for position in positions]
