"""Files that appear complete or not at all.

BasicSR 1.4.2 writes checkpoints in place, so a job killed during
``torch.save`` leaves a truncated file that ``--auto_resume`` then picks up.
Here a file is written under a temporary name in the same folder, flushed and
fsynced, then renamed over the final name (atomic on POSIX file systems).
"""

import os

import torch


def atomic_write(path, content):
    """Write ``content`` (bytes, or a callable taking the open binary file) to ``path`` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(folder, f'.{os.path.basename(path)}.tmp{os.getpid()}')
    try:
        with open(tmp_path, 'wb') as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)`` such that ``path`` is either old or complete, never partial."""
    atomic_write(path, lambda f: torch.save(obj, f))
