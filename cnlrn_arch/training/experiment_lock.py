"""One run per experiment, held by a lock the kernel drops when the run's process dies.

Two ``basicsr train`` runs with one ``name`` share ``experiments/<name>``: BasicSR
archives the first run's folder under the second's feet, the first keeps saving
by path into the second's folder and the runs replace each other's checkpoints.
So a run takes an exclusive ``flock`` on ``experiments/.<name>.lock`` (beside the
folder: archiving does not move it) before BasicSR creates or archives anything,
and a second run is refused while the first lives; a killed run leaves no stale
lock (see :mod:`.process_lock`). ``basicsr test`` locks ``results/<name>`` alike.
"""

import os
from typing import Any

import torch.distributed as dist

from cnlrn_base.errors import UserError
from cnlrn_base.process_lock import LockHeld, hold

_held: list[int] = []  # the descriptors through which this process holds its locks


class ExperimentLocked(UserError):
    """Another process trains the experiment; the message names it and what to do."""


def acquire(experiments_root: str, doing: str = 'trained') -> None:
    """Lock the experiment for this process until :func:`release` or its end.

    Args:
        experiments_root (str): the experiment's folder (it need not exist yet).
        doing (str): what the holder does with it, for the refusal: 'trained' or 'tested'.

    Raises:
        ExperimentLocked: another process holds the lock, or this one through another descriptor (a run that
            was not released).
    """
    parent, name = os.path.split(os.path.normpath(experiments_root))
    path = os.path.join(parent, f'.{name}.lock')
    os.makedirs(parent, exist_ok=True)
    try:
        _held.append(hold(path))
    except LockHeld as held:
        raise ExperimentLocked(
            f'experiment {name!r} is being {doing} by {held.holder} (lock {path}): wait for that run to end or '
            'stop it, or set another name in the option file'
        ) from None


def lock_experiment(opt: dict[str, Any], root: str = 'experiments_root', doing: str = 'trained') -> None:
    """Lock a run's experiment (rank 0 locks: the other ranks belong to the same run).

    Args:
        opt (dict[str, Any]): the parsed options: ``rank``, ``dist`` and ``path:<root>`` are read.
        root (str): the key of the folder to lock under ``path``: 'experiments_root' or 'results_root'.
        doing (str): what this run does there, for the refusal: 'trained' or 'tested'.

    Raises:
        ExperimentLocked: on every rank, when another run holds the experiment.
    """
    refusal = None
    if opt['rank'] == 0:
        try:
            acquire(opt['path'][root], doing)
        except ExperimentLocked as err:
            refusal = str(err)
    if opt['dist']:
        # every rank stops alike: a rank left alone would wait for rank 0 at its first collective (forever
        # under slurm, where no torchrun stops the job)
        shared = [refusal]
        dist.broadcast_object_list(shared, src=0)
        refusal = shared[0]
    if refusal is not None:
        raise ExperimentLocked(refusal)


def release() -> None:
    """Close this process's lock descriptors: the locks go once no other process shares the descriptors."""
    for fd in _held:
        os.close(fd)
    _held.clear()


# a forked child (a DataLoader worker) inherits the descriptors; closing them there leaves the parent's lock in
# place, and a killed training no longer keeps its experiment locked until its orphaned workers notice
os.register_at_fork(after_in_child=release)
