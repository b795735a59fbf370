"""cnlrn_arch.training.basicsr_overrides in-process: each override once apply() swapped it in, and the checks before.

Every test starts from basicsr's own attributes and the patched names are called through basicsr's modules, so
they only pass with the override in place. tests/test_pipeline/test_training_pipeline.py runs the same overrides
end to end in subprocesses (auto_resume after a kill, two CPU ranks under torchrun, bit-exact resumption).
"""

import errno
import fcntl
import os
import subprocess
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace

import basicsr
import basicsr.test
import basicsr.train
import basicsr.utils.misc
import basicsr.utils.options
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.data.data_sampler import EnlargedSampler

from cnlrn_arch.training import basicsr_overrides as basicsr_patches
from cnlrn_arch.training import experiment_lock
from cnlrn_arch.training.basicsr_overrides import PATCHES, ResumableSampler
from cnlrn_arch.training.experiment_lock import ExperimentLocked
from cnlrn_base.errors import UserError

PATCHED = [f'{module.__name__}.{name}' for module, name, _ in PATCHES]


@pytest.fixture(autouse=True)
def unpatched(monkeypatch):
    """basicsr's own attributes during the test (even if something applied the patches before), then as they were."""
    for module, name, replacement in PATCHES:
        monkeypatch.setattr(module, name, basicsr_patches._replaced.get(replacement, getattr(module, name)))


@pytest.fixture(autouse=True)
def no_experiment_locked():
    """load_resume_state locks the experiment for the rest of the process; the runner releases it after a run."""
    yield
    experiment_lock.release()


def current():
    return [getattr(module, name) for module, name, _ in PATCHES]


def test_apply_swaps_every_override_in_and_a_second_call_changes_nothing():
    own = current()
    basicsr_patches.apply()
    basicsr_patches.apply()
    assert current() == [replacement for _, _, replacement in PATCHES]
    # still basicsr's own behind each override, not the override itself (create_train_val_dataloader calls it)
    assert [basicsr_patches._replaced[replacement] for _, _, replacement in PATCHES] == own


def test_another_basicsr_release_is_refused_before_anything_is_swapped(monkeypatch):
    monkeypatch.setattr(basicsr, '__version__', '1.4.3')
    own = current()
    with pytest.raises(UserError) as err:
        basicsr_patches.apply()
    assert str(err.value) == (
        'basicsr 1.4.3 is installed, but cnlrn_arch overrides parts of basicsr 1.4.2: '
        'install basicsr==1.4.2 (see the README)'
    )
    assert current() == own


@pytest.mark.parametrize('patch', PATCHES, ids=PATCHED)
def test_a_missing_name_is_refused_before_anything_is_swapped(patch, monkeypatch):
    module, name, replacement = patch
    monkeypatch.delattr(module, name)
    with pytest.raises(UserError) as err:
        basicsr_patches.apply()
    kind = 'class' if isinstance(replacement, type) else 'function'
    assert str(err.value) == (
        f'basicsr 1.4.2 lacks {module.__name__}.{name} (or it is not the {kind} cnlrn_arch '
        'replaces), so the installation is modified: reinstall basicsr==1.4.2 (see the README)'
    )
    assert not any(getattr(m, n, None) is r for m, n, r in PATCHES)


@pytest.mark.parametrize(
    'module, name, stand_in',
    [
        (basicsr.train, 'EnlargedSampler', torch.utils.data.SequentialSampler),  # a class, but not a base of ours
        (basicsr.utils.options, 'init_dist', 'nccl'),
    ],
)
def test_a_name_of_another_kind_is_refused(module, name, stand_in, monkeypatch):
    monkeypatch.setattr(module, name, stand_in)
    with pytest.raises(UserError, match=f'lacks {module.__name__}.{name} '):
        basicsr_patches.apply()


def resume_opt(root, rank=0, world_size=1):
    """The options load_resume_state reads for experiments/tiny under ``root``, as parse_options makes them."""
    experiment = root / 'experiments' / 'tiny'
    return dict(
        auto_resume=True,
        network_g={},
        rank=rank,
        dist=world_size > 1,
        path=dict(
            experiments_root=str(experiment),
            training_states=str(experiment / 'training_states'),
            models=str(experiment / 'models'),
        ),
    )


def test_load_resume_state_takes_the_newest_complete_state_on_the_cpu(tmp_path, capsys):
    opt = resume_opt(tmp_path)
    states, models = tmp_path / 'experiments/tiny/training_states', tmp_path / 'experiments/tiny/models'
    states.mkdir(parents=True)
    models.mkdir()
    for iteration in (2, 4, 6):
        # as MultiStepRestartLR and Adam save them: milestones in a Counter, moments as tensors
        state = dict(
            epoch=1,
            iter=iteration,
            schedulers=[dict(milestones=Counter({8: 1}))],
            optimizers=[dict(state={0: dict(exp_avg=torch.ones(2))})],
        )
        torch.save(state, states / f'{iteration}.state')
    (states / '4.state').write_bytes((states / '4.state').read_bytes()[:1000])
    for iteration in (2, 4):  # none for 6
        torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    basicsr_patches.apply()

    state = basicsr.train.load_resume_state(opt)

    out = capsys.readouterr().out
    assert f'skipping {states / "6.state"}: its network checkpoint {models / "net_g_6.pth"} is missing' in out
    assert f'skipping {states / "4.state"}: unreadable' in out
    assert state['iter'] == 2 and state['schedulers'][0]['milestones'] == Counter({8: 1})
    assert state['optimizers'][0]['state'][0]['exp_avg'].device == torch.device('cpu')
    assert opt['path']['resume_state'] == str(states / '2.state') and opt['resume_position'] == (1, 2)
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth') and opt['path']['param_key_g'] == 'params'


def test_an_empty_state_is_skipped_as_unreadable(tmp_path, capsys):
    """A 0-byte file raises EOFError(), whose message has no first line."""
    opt = resume_opt(tmp_path)
    states, models = tmp_path / 'experiments/tiny/training_states', tmp_path / 'experiments/tiny/models'
    states.mkdir(parents=True)
    models.mkdir()
    torch.save(dict(epoch=0, iter=2), states / '2.state')
    (states / '4.state').touch()
    for iteration in (2, 4):
        torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    basicsr_patches.apply()

    state = basicsr.train.load_resume_state(opt)

    assert f'auto_resume: skipping {states / "4.state"}: unreadable (EOFError)' in capsys.readouterr().out
    assert state['iter'] == 2


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
def test_a_run_of_a_locked_experiment_is_refused_before_it_touches_the_folder(resume, tmp_path):
    opt = resume_opt(tmp_path)
    opt['auto_resume'] = resume
    (tmp_path / 'experiments/tiny/training_states').mkdir(parents=True)
    basicsr_patches.apply()
    with hold_lock(tmp_path / 'experiments/.tiny.lock', '4242 node7\n'):
        with pytest.raises(ExperimentLocked, match="experiment 'tiny' is being trained by process 4242 on node7 "):
            basicsr.train.load_resume_state(opt)
        assert sorted(os.listdir(tmp_path / 'experiments')) == ['.tiny.lock', 'tiny']
        assert 'resume_state' not in opt['path']

    assert basicsr.train.load_resume_state(opt) is None  # once the other run is gone
    with pytest.raises(BlockingIOError), hold_lock(tmp_path / 'experiments/.tiny.lock', ''):  # held by this run now
        pass


def test_a_test_of_a_locked_results_folder_is_refused_before_it_is_archived(tmp_path, monkeypatch):
    """basicsr test archives results/<name> when it exists: a second test of the name would move the first's away."""
    monkeypatch.setattr(basicsr.utils.misc, 'get_time_str', lambda: 'then')  # the archive's name, if it happened
    results = tmp_path / 'results' / 'tiny'
    opt = dict(rank=0, dist=False, is_train=False, path=dict(results_root=str(results), visualization=str(results)))
    results.mkdir(parents=True)
    basicsr_patches.apply()
    with hold_lock(tmp_path / 'results/.tiny.lock', '4242 node7\n'):
        with pytest.raises(ExperimentLocked, match="experiment 'tiny' is being tested by process 4242 on node7 "):
            basicsr.test.make_exp_dirs(opt)
        assert sorted(os.listdir(tmp_path / 'results')) == ['.tiny.lock', 'tiny']

    basicsr.test.make_exp_dirs(opt)  # once the other run is gone: basicsr archives the old folder as usual
    assert sorted(os.listdir(tmp_path / 'results')) == ['.tiny.lock', 'tiny', 'tiny_archived_then']
    experiment_lock.release()


@pytest.mark.parametrize('refusal', [None, 'experiment is being trained by ...'])
def test_under_ddp_rank_0_locks_and_every_rank_stops_alike(refusal, tmp_path, monkeypatch):
    """Rank 1 does not lock (the job's rank 0 holds the lock) and raises what rank 0 broadcasts."""
    broadcasts = []

    def from_rank_0(objects, src):
        broadcasts.append((list(objects), src))
        objects[0] = refusal

    monkeypatch.setattr(dist, 'broadcast_object_list', from_rank_0)
    opt = resume_opt(tmp_path, rank=1, world_size=2)
    basicsr_patches.apply()
    if refusal:
        with pytest.raises(ExperimentLocked, match=refusal):
            basicsr.train.load_resume_state(opt)
    else:
        assert basicsr.train.load_resume_state(opt) is None
    assert broadcasts == [([None], 0)]
    assert not (tmp_path / 'experiments').exists()


def test_a_result_image_that_cannot_be_written_is_one_line_naming_it_and_the_old_one_stays(tmp_path, monkeypatch):
    path = tmp_path / 'visualization' / 'img.png'
    image = np.full((4, 4, 3), 7, np.uint8)
    basicsr_patches.apply()
    basicsr.models.sr_model.imwrite(image, str(path))  # the folder made, as basicsr's does
    old = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(UserError) as err:
        basicsr.models.sr_model.imwrite(image + 1, str(path))
    assert str(err.value).startswith(
        f'cannot write {path}: No space left on device on the disk of {path.parent} ('
    ) and str(err.value).endswith(' MiB free)')
    assert os.listdir(path.parent) == ['img.png'] and path.read_bytes() == old


def test_init_dist_from_slurm_on_cpu_uses_gloo_and_slurm_ranks(monkeypatch):
    for name in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    # the fourth of 8 tasks, the second on its node
    for name, value in dict(SLURM_PROCID='3', SLURM_NTASKS='8', SLURM_LOCALID='1', SLURM_NODELIST='n[1-4]').items():
        monkeypatch.setenv(name, value)
    queries, groups = [], []
    monkeypatch.setattr(subprocess, 'getoutput', lambda command: queries.append(command) or 'n1')  # no scontrol here
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(mp, 'set_start_method', lambda method: None)  # keep this process's start method
    # a process group of 8 would wait for the other 7
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: groups.append(kwargs))
    basicsr_patches.apply()

    basicsr.utils.options.init_dist('slurm', port=29612)  # as parse_options calls it with dist_params

    assert queries == ['scontrol show hostname n[1-4] | head -n1']
    assert groups == [dict(backend='gloo', timeout=timedelta(minutes=60))]  # not torch's 10 (see dist_timeout)
    assert {
        name: os.environ[name] for name in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK')
    } == dict(MASTER_ADDR='n1', MASTER_PORT='29612', WORLD_SIZE='8', RANK='3', LOCAL_RANK='1')


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_init_dist_waits_as_long_as_the_options_say(launcher, monkeypatch):
    """basicsr hands dist_params to init_dist under slurm only: the runner sets the options' timeout for both."""
    monkeypatch.setattr(subprocess, 'getoutput', lambda command: 'n1')
    for name, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0', SLURM_NODELIST='n1').items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(mp, 'set_start_method', lambda method: None)
    groups = []
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: groups.append(kwargs))
    monkeypatch.setattr(basicsr_patches, '_dist_timeout_minutes', basicsr_patches._dist_timeout_minutes)
    basicsr_patches.apply()
    basicsr_patches.set_dist_timeout({'dist_params': {'port': 29612, 'timeout_minutes': 90}})

    basicsr.utils.options.init_dist(launcher, **({'port': 29612, 'timeout_minutes': 90} if launcher == 'slurm' else {}))

    assert groups == [dict(backend='gloo', timeout=timedelta(minutes=90))]


def epoch_of(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_sampler_resumes_inside_the_epoch_it_was_stopped_in():
    data = list(range(10))
    basicsr_patches.apply()
    resumed = basicsr.train.EnlargedSampler(data, 1, 0)
    resumed.resume_at(epoch=1, iteration=7, batch_size=2)  # 5 batches an epoch: 2 of epoch 1 were trained on
    uninterrupted = EnlargedSampler(data, 1, 0)
    assert epoch_of(resumed, 1) == epoch_of(uninterrupted, 1)[4:]
    assert epoch_of(resumed, 2) == epoch_of(uninterrupted, 2)


def test_sampler_hands_the_epoch_and_unfolded_positions_to_a_data_set_that_takes_them():
    """The epoch travels with each index: persistent data loader workers never see the main process's set_epoch."""

    class EpochAware(list):
        def set_epoch(self, epoch):
            raise AssertionError('the epoch comes with the indices')

    data = EpochAware(range(5))
    basicsr_patches.apply()
    ranks = [basicsr.train.EnlargedSampler(data, 2, rank, ratio=2) for rank in (0, 1)]
    samples = [epoch_of(sampler, 3) for sampler in ranks]
    assert {epoch for epoch, _ in samples[0] + samples[1]} == {3}
    # the data set folds the positions into its range
    assert sorted(position for _, position in samples[0] + samples[1]) == list(range(10))


def test_dataloader_factory_seeds_the_data_set_and_resumes_its_sampler(monkeypatch):
    data = list(range(10))
    monkeypatch.setattr(basicsr.train, 'build_dataset', lambda dataset_opt: data)
    opt = dict(
        manual_seed=5,
        world_size=1,
        rank=0,
        num_gpu=0,
        dist=False,
        train=dict(total_iter=20),
        resume_position=(1, 7),
        datasets=dict(train=dict(phase='train', batch_size_per_gpu=2, num_worker_per_gpu=0)),
    )
    messages = []
    basicsr_patches.apply()

    loader, sampler, _, total_epochs, _ = basicsr.train.create_train_val_dataloader(
        opt, SimpleNamespace(info=messages.append)
    )

    assert opt['datasets']['train']['seed'] == 5 and total_epochs == 4
    assert isinstance(sampler, ResumableSampler) and loader.sampler is sampler
    assert messages[-1] == 'Resuming inside epoch 1: 4 samples already seen are skipped.'
    sampler.set_epoch(1)
    rest = epoch_of(EnlargedSampler(data, 1, 0), 1)[4:]
    assert [batch.tolist() for batch in loader] == [rest[i : i + 2] for i in range(0, len(rest), 2)]
