"""cnlrn_arch.training.resume through basicsr's train module once the overrides are applied: the state a run
resumes from (read once, on the CPU), what a stopped run left, and the sampler that goes on mid-epoch.

tests/test_pipeline/test_training_pipeline.py resumes real runs in subprocesses (auto_resume after a kill, two CPU
ranks under torchrun, bit-exact resumption).
"""

from collections import Counter
from types import SimpleNamespace

import basicsr.train
import pytest
import torch
from basicsr.data.data_sampler import EnlargedSampler

from cnlrn_arch.training import basicsr_overrides
from cnlrn_arch.training.resume import ResumableSampler, read_training_state, what_training_left
from cnlrn_base.errors import UserError


def resume_opt(root, auto_resume=True):
    """The options load_resume_state reads for experiments/tiny under ``root``, as parse_options makes them."""
    experiment = root / 'experiments' / 'tiny'
    return dict(
        auto_resume=auto_resume,
        network_g={},
        rank=0,
        dist=False,
        path=dict(
            experiments_root=str(experiment),
            training_states=str(experiment / 'training_states'),
            models=str(experiment / 'models'),
        ),
    )


def save_states(root, iterations, networks):
    """Training states of ``iterations`` (as MultiStepRestartLR and Adam save them) and checkpoints of ``networks``."""
    states, models = root / 'experiments/tiny/training_states', root / 'experiments/tiny/models'
    states.mkdir(parents=True)
    models.mkdir()
    for iteration in iterations:
        state = dict(
            epoch=1,
            iter=iteration,
            schedulers=[dict(milestones=Counter({8: 1}))],
            optimizers=[dict(state={0: dict(exp_avg=torch.ones(2))})],
        )
        torch.save(state, states / f'{iteration}.state')
    for iteration in networks:
        torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    return states, models


def test_auto_resume_takes_the_newest_complete_state_on_the_cpu(basicsr_overrides, tmp_path, capsys):
    opt = resume_opt(tmp_path)
    states, models = save_states(tmp_path, (2, 4, 6), (2, 4))  # no network for 6
    (states / '4.state').write_bytes((states / '4.state').read_bytes()[:1000])

    state = basicsr.train.load_resume_state(opt)

    out = capsys.readouterr().out
    assert f'skipping {states / "6.state"}: its network checkpoint {models / "net_g_6.pth"} is missing' in out
    assert f'skipping {states / "4.state"}: unreadable' in out
    assert state['iter'] == 2 and state['schedulers'][0]['milestones'] == Counter({8: 1})
    assert state['optimizers'][0]['state'][0]['exp_avg'].device == torch.device('cpu')
    assert opt['path']['resume_state'] == str(states / '2.state') and opt['resume_position'] == (1, 2)
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth') and opt['path']['param_key_g'] == 'params'
    assert basicsr_overrides.parsed_opt is opt


def test_an_empty_state_is_skipped_as_unreadable(basicsr_overrides, tmp_path, capsys):
    """A 0-byte file raises EOFError(), whose message has no first line."""
    opt = resume_opt(tmp_path)
    states, _ = save_states(tmp_path, (2,), (2, 4))
    (states / '4.state').touch()

    state = basicsr.train.load_resume_state(opt)

    assert f'auto_resume: skipping {states / "4.state"}: unreadable (EOFError)' in capsys.readouterr().out
    assert state['iter'] == 2


def test_a_given_resume_state_is_the_one_read_before_the_run(tmp_path):
    states, models = save_states(tmp_path, (2,), (2,))
    given = read_training_state(str(states / '2.state'), 'o.yml')
    (states / '2.state').unlink()  # read once: basicsr's load_resume_state would read it again
    opt = resume_opt(tmp_path, auto_resume=False)
    opt['path']['resume_state'] = str(states / '2.state')

    with basicsr_overrides.apply(resume_state=given):
        assert basicsr.train.load_resume_state(opt) is given

    assert opt['resume_position'] == (1, 2) and opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth')


def test_no_state_without_auto_resume_or_a_given_one(basicsr_overrides, tmp_path):
    save_states(tmp_path, (2,), (2,))
    opt = resume_opt(tmp_path, auto_resume=False)
    assert basicsr.train.load_resume_state(opt) is None and 'resume_position' not in opt


def test_an_unreadable_resume_state_is_one_line_naming_it(tmp_path):
    (tmp_path / '2.state').write_bytes(b'not a state')
    with pytest.raises(UserError) as err:
        read_training_state(str(tmp_path / '2.state'), 'o.yml')
    assert str(err.value).startswith(f'o.yml: path:resume_state: cannot read {tmp_path / "2.state"}: ')
    with pytest.raises(UserError, match=r'^o.yml: path:resume_state must be the path of a training state, got 2$'):
        read_training_state(2, 'o.yml')


def test_what_a_stopped_training_left_is_its_newest_complete_checkpoint(tmp_path):
    opt = resume_opt(tmp_path)
    assert what_training_left(opt) == 'no checkpoint saved yet'
    save_states(tmp_path, (2, 4), (2,))  # 4 has no network: not complete
    models = tmp_path / 'experiments/tiny/models'
    assert what_training_left(opt) == (
        f'last complete checkpoint: {models}/net_g_2.pth, iter 2 (resume with --auto_resume)'
    )


def epoch_of(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_sampler_resumes_inside_the_epoch_it_was_stopped_in(basicsr_overrides):
    data = list(range(10))
    resumed = basicsr.train.EnlargedSampler(data, 1, 0)
    resumed.resume_at(epoch=1, iteration=7, batch_size=2)  # 5 batches an epoch: 2 of epoch 1 were trained on
    uninterrupted = EnlargedSampler(data, 1, 0)
    assert epoch_of(resumed, 1) == epoch_of(uninterrupted, 1)[4:]
    assert epoch_of(resumed, 2) == epoch_of(uninterrupted, 2)


def test_sampler_hands_the_epoch_and_unfolded_positions_to_a_data_set_that_takes_them(basicsr_overrides):
    """The epoch travels with each index: persistent data loader workers never see the main process's set_epoch."""

    class EpochAware(list):
        def set_epoch(self, epoch):
            raise AssertionError('the epoch comes with the indices')

    data = EpochAware(range(5))
    ranks = [basicsr.train.EnlargedSampler(data, 2, rank, ratio=2) for rank in (0, 1)]
    samples = [epoch_of(sampler, 3) for sampler in ranks]
    assert {epoch for epoch, _ in samples[0] + samples[1]} == {3}
    # the data set folds the positions into its range
    assert sorted(position for _, position in samples[0] + samples[1]) == list(range(10))


def test_dataloader_factory_seeds_the_data_set_and_resumes_its_sampler(basicsr_overrides, monkeypatch):
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

    loader, sampler, _, total_epochs, _ = basicsr.train.create_train_val_dataloader(
        opt, SimpleNamespace(info=messages.append)
    )

    assert opt['datasets']['train']['seed'] == 5 and total_epochs == 4
    assert isinstance(sampler, ResumableSampler) and loader.sampler is sampler
    assert messages[-1] == 'Resuming inside epoch 1: 4 samples already seen are skipped.'
    sampler.set_epoch(1)
    rest = epoch_of(EnlargedSampler(data, 1, 0), 1)[4:]
    assert [batch.tolist() for batch in loader] == [rest[i : i + 2] for i in range(0, len(rest), 2)]
