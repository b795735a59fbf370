"""Files that appear complete or not at all, and one line when a write fails.

BasicSR 1.4.2 writes checkpoints in place, so a job killed during
``torch.save``, or a disk filling up, leaves a truncated file that
``--auto_resume`` then picks up. Here a file is written under a temporary
name in the same folder, flushed and fsynced, then renamed over the final name
(atomic on POSIX file systems); when anything fails the temporary file is
removed and the old file, if any, stays as it was.
"""

import errno
import os
import shutil

import torch

from cnlrn_base.errors import first_line


def atomic_write(path, content):
    """Write ``content`` (bytes, or a callable taking the open binary file) to ``path`` atomically.

    Raises:
        OSError: as the write raised it (a full disk, a missing folder...); ``path`` is untouched then.
    """
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
    """``torch.save(obj, path)`` such that ``path`` is either old or complete, never partial.

    Raises:
        OSError: as the write raised it; ``path`` is untouched then.
    """

    def save(f):
        try:
            torch.save(obj, f)
        except RuntimeError as err:
            # after a failed write (a full disk) torch's zip writer fails again closing the archive, with
            # 'unexpected pos N vs M', which hides the OSError that says what happened
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise

    atomic_write(path, save)


def write_failure(path, err):
    """One line for a failed write of ``path``: the reason and, for a full disk, the folder and its free space.

    Args:
        path (str): the file that was to be written.
        err (OSError): what the write raised.
    """
    reason = err.strerror or first_line(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = os.path.dirname(os.path.abspath(path))
        reason += f' on the disk of {folder} ({shutil.disk_usage(folder).free / 2**20:.1f} MiB free)'
    return f'cannot write {path}: {reason}'
