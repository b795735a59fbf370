"""cnlrn_arch.training.experiment_lock with forked children as the other runs: one holder at a time, none once dead.

tests/test_pipeline/test_training_pipeline.py refuses a second real ``basicsr train`` while a first one runs.
"""

import fcntl
import os
import signal
import socket
import time

import pytest

from cnlrn_arch.training import experiment_lock
from cnlrn_arch.training.experiment_lock import ExperimentLocked


@pytest.fixture(autouse=True)
def released():
    yield
    experiment_lock.release()


def child(lock, root):
    """Fork a child that sleeps (after locking ``root`` when ``lock``); its PID once it is ready.

    It inherits whatever this process holds, as a DataLoader worker does.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if lock:
                experiment_lock.acquire(root)
            os.write(write, b'ready')
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 5) == b'ready'
    os.close(read)
    return pid


def kill(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_second_run_is_refused_naming_the_first_and_a_killed_ones_lock_is_gone(tmp_path):
    root = str(tmp_path / 'experiments' / 'tiny')
    pid = child(True, root)
    try:
        with pytest.raises(ExperimentLocked) as err:
            experiment_lock.acquire(root)
    finally:
        kill(pid)  # SIGKILL: the process cannot release anything itself
    assert str(err.value) == (
        f"experiment 'tiny' is being trained by process {pid} on {socket.gethostname()} "
        f'(lock {tmp_path}/experiments/.tiny.lock): wait for that run to end or stop it, '
        'or set another name in the option file'
    )
    assert not os.path.exists(root)  # the lock lies beside the folder, which is not made

    experiment_lock.acquire(root)
    lock_file = tmp_path / 'experiments' / '.tiny.lock'
    assert lock_file.read_text() == f'{os.getpid()} {socket.gethostname()}\n'


@pytest.mark.parametrize('content, who', [('4242 elsewhere\n', 'process 4242 on elsewhere'), ('', 'another process')])
def test_a_lock_held_through_another_descriptor_is_respected_until_it_is_closed(content, who, tmp_path):
    """Also when the holder has not written its PID yet (it writes right after locking)."""
    root = str(tmp_path / 'tiny')
    with open(tmp_path / '.tiny.lock', 'w') as other:
        other.write(content)
        other.flush()
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(ExperimentLocked, match=f"experiment 'tiny' is being trained by {who} "):
            experiment_lock.acquire(root)
    experiment_lock.acquire(root)


def test_a_second_acquisition_in_one_process_is_refused_until_the_first_is_released(tmp_path):
    root = str(tmp_path / 'tiny')
    experiment_lock.acquire(root)
    with pytest.raises(ExperimentLocked, match=f'by process {os.getpid()} on'):
        experiment_lock.acquire(root)
    experiment_lock.release()
    experiment_lock.acquire(root)


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path):
    """A DataLoader worker outliving its killed training must not keep the experiment locked."""
    root = str(tmp_path / 'tiny')
    experiment_lock.acquire(root)
    pid = child(False, root)
    try:
        experiment_lock.release()
        experiment_lock.acquire(root)  # refused if the child's inherited descriptor still held the lock
    finally:
        kill(pid)
