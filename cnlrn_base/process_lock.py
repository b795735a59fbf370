"""A lock held by one process at a time, which the kernel drops when that process dies.

An exclusive ``flock`` on a file: the kernel releases it with the last
descriptor of its open file, so a process killed by SIGKILL or the OOM killer
leaves no stale lock. The file stays, naming its last holder (removing it would
let two processes lock two different files).
"""

import fcntl
import os
import socket


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` names it ('process PID on HOST')."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def hold(path: str) -> int:
    """Lock ``path`` (created if missing) and write this process's PID and host into it.

    Args:
        path (str): the lock file.

    Returns:
        int: the descriptor holding the lock; closing it releases the lock.

    Raises:
        LockHeld: another process (or this one through another descriptor) holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # the holder writes its PID right after locking; an empty file means it is between the two
        holder = os.pread(fd, 256, 0).decode(errors='replace').split()
        os.close(fd)
        raise LockHeld(f'process {holder[0]} on {holder[1]}' if len(holder) == 2 else 'another process') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode(), 0)
    return fd
