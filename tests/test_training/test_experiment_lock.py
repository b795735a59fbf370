"""cnlrn_arch.training.experiment_lock with forked children as the other runs: one holder at a time, none once dead;
and the runs that lock, through basicsr's modules once the overrides are applied.

tests/test_pipeline/test_training_pipeline.py refuses a second real ``basicsr train`` while a first one runs.
"""

import fcntl
import os
import signal
import socket
import time
from contextlib import contextmanager

import basicsr.test
import basicsr.train
import basicsr.utils.misc
import pytest
import torch.distributed as dist

from cnlrn_arch.training import experiment_lock
from cnlrn_arch.training.experiment_lock import ExperimentLocked
from tests.test_training.test_resume import resume_opt


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


@contextmanager
def hold_lock(path, holder):
    """Lock ``path`` through a descriptor of its own, as another run's process would, writing ``holder`` in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w') as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.write(holder)
        other.flush()
        yield


@pytest.mark.parametrize('resume', [False, True], ids=['fresh', 'auto_resume'])
def test_a_run_of_a_locked_experiment_is_refused_before_it_touches_the_folder(resume, basicsr_overrides, tmp_path):
    opt = resume_opt(tmp_path, auto_resume=resume)
    (tmp_path / 'experiments/tiny/training_states').mkdir(parents=True)
    with hold_lock(tmp_path / 'experiments/.tiny.lock', '4242 node7\n'):
        with pytest.raises(ExperimentLocked, match="experiment 'tiny' is being trained by process 4242 on node7 "):
            basicsr.train.load_resume_state(opt)
        assert sorted(os.listdir(tmp_path / 'experiments')) == ['.tiny.lock', 'tiny']
        assert 'resume_state' not in opt['path']

    assert basicsr.train.load_resume_state(opt) is None  # once the other run is gone
    with pytest.raises(BlockingIOError), hold_lock(tmp_path / 'experiments/.tiny.lock', ''):  # held by this run now
        pass


def test_a_run_releases_its_experiment_when_its_overrides_end(basicsr_overrides, tmp_path):
    basicsr.train.load_resume_state(resume_opt(tmp_path))
    basicsr_overrides.undo()
    with hold_lock(tmp_path / 'experiments/.tiny.lock', ''):
        pass


def test_a_test_of_a_locked_results_folder_is_refused_before_it_is_archived(basicsr_overrides, tmp_path, monkeypatch):
    """basicsr test archives results/<name> when it exists: a second test of the name would move the first's away."""
    monkeypatch.setattr(basicsr.utils.misc, 'get_time_str', lambda: 'then')  # the archive's name, if it happened
    results = tmp_path / 'results' / 'tiny'
    opt = dict(rank=0, dist=False, is_train=False, path=dict(results_root=str(results), visualization=str(results)))
    results.mkdir(parents=True)
    with hold_lock(tmp_path / 'results/.tiny.lock', '4242 node7\n'):
        with pytest.raises(ExperimentLocked, match="experiment 'tiny' is being tested by process 4242 on node7 "):
            basicsr.test.make_exp_dirs(opt)
        assert sorted(os.listdir(tmp_path / 'results')) == ['.tiny.lock', 'tiny']

    basicsr.test.make_exp_dirs(opt)  # once the other run is gone: basicsr archives the old folder as usual
    assert sorted(os.listdir(tmp_path / 'results')) == ['.tiny.lock', 'tiny', 'tiny_archived_then']


@pytest.mark.parametrize('refusal', [None, 'experiment is being trained by ...'])
def test_under_ddp_rank_0_locks_and_every_rank_stops_alike(refusal, basicsr_overrides, tmp_path, monkeypatch):
    """Rank 1 does not lock (the job's rank 0 holds the lock) and raises what rank 0 broadcasts."""
    broadcasts = []

    def from_rank_0(objects, src):
        broadcasts.append((list(objects), src))
        objects[0] = refusal

    monkeypatch.setattr(dist, 'broadcast_object_list', from_rank_0)
    opt = dict(resume_opt(tmp_path), rank=1, dist=True)
    if refusal:
        with pytest.raises(ExperimentLocked, match=refusal):
            basicsr.train.load_resume_state(opt)
    else:
        assert basicsr.train.load_resume_state(opt) is None
    assert broadcasts == [([None], 0)]
    assert not (tmp_path / 'experiments').exists()
