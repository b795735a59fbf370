"""The process lock: one holder at a time, named in the lock file."""

import os
import socket

import pytest

from cnlrn_base.process_lock import LockHeld, hold


def test_the_holder_is_named_and_a_longer_old_content_is_gone(tmp_path):
    lock = tmp_path / 'x.lock'
    lock.write_text('12345678901234567890 a-previous-holder-with-a-long-host-name\n')
    fd = hold(str(lock))
    try:
        assert lock.read_text() == f'{os.getpid()} {socket.gethostname()}\n'
        with pytest.raises(LockHeld) as held:
            hold(str(lock))
        assert held.value.holder == f'process {os.getpid()} on {socket.gethostname()}'
    finally:
        os.close(fd)


def test_the_lock_is_free_once_its_descriptor_is_closed(tmp_path):
    os.close(hold(str(tmp_path / 'x.lock')))
    os.close(hold(str(tmp_path / 'x.lock')))
