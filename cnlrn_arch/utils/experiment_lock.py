"""One training run per experiment, held by a lock the kernel drops when the run's process dies.

Two ``basicsr train`` runs with one ``name`` share ``experiments/<name>``: BasicSR
archives the first run's folder under the second's feet, the first keeps saving
by path into the second's folder and the runs replace each other's checkpoints.
So a run takes an exclusive ``flock`` on ``experiments/.<name>.lock`` (beside the
folder: archiving does not move it) before BasicSR creates or archives anything,
and a second run is refused while the first lives. The kernel releases a flock
with the last descriptor of its open file, so a run killed by SIGKILL or the OOM
killer leaves no stale lock; the file itself stays, naming its last holder.
"""

import fcntl
import os
import socket

from .errors import UserError

_held: list[int] = []  # the descriptors through which this process holds its locks


class ExperimentLocked(UserError):
    """Another process trains the experiment; the message names it and what to do."""


def acquire(experiments_root: str) -> None:
    """Lock the experiment for this process until :func:`release` or its end.

    Args:
        experiments_root (str): the experiment's folder (it need not exist yet).

    Raises:
        ExperimentLocked: another process holds the lock, or this one through another descriptor (a run that
            was not released).
    """
    parent, name = os.path.split(os.path.normpath(experiments_root))
    path = os.path.join(parent, f'.{name}.lock')
    os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # the holder writes its PID right after locking; an empty file means it is between the two
        holder = os.pread(fd, 256, 0).decode(errors='replace').split()
        os.close(fd)
        who = f'process {holder[0]} on {holder[1]}' if len(holder) == 2 else 'another process'
        raise ExperimentLocked(
            f'experiment {name!r} is being trained by {who} (lock {path}): wait for that run to end or stop it, '
            'or set another name in the option file'
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode(), 0)
    _held.append(fd)


def release() -> None:
    """Close this process's lock descriptors: the locks go once no other process shares the descriptors."""
    for fd in _held:
        os.close(fd)
    _held.clear()


# a forked child (a DataLoader worker) inherits the descriptors; closing them there leaves the parent's lock in
# place, and a killed training no longer keeps its experiment locked until its orphaned workers notice
os.register_at_fork(after_in_child=release)
