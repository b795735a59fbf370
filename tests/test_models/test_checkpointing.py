"""Checkpoints on their own: the newest complete one, what a network file and a training state hold, and the
checks of a training state before resuming."""

import pytest
import torch

from cnlrn_arch.models.checkpointing import Checkpoints
from cnlrn_base.errors import UserError


def run_opt(tmp_path, **extra):
    """The options Checkpoints reads: the folders, a network's options, train:total_iter."""
    return dict(
        path=dict(models=str(tmp_path), training_states=str(tmp_path), resume_state='exp/7.state'),
        network_g=dict(type='CNLRN', n_feats=16),
        train=dict(total_iter=10),
        **extra,
    )


def test_the_last_checkpoint_is_this_runs_newest_else_the_one_resumed_from(tmp_path):
    fresh = Checkpoints(run_opt(tmp_path))
    assert fresh.last() is None and fresh.resume_note() == 'no checkpoint saved yet'
    resumed = Checkpoints(run_opt(tmp_path, resume_position=(1, 7)))
    assert resumed.last() == str(tmp_path / 'net_g_7.pth')
    resumed.saved(-1)  # *_latest: no training state to resume from
    assert resumed.last() == str(tmp_path / 'net_g_7.pth')
    resumed.saved(9)
    assert resumed.resume_note() == f'last complete checkpoint: {tmp_path}/net_g_9.pth (resume with --auto_resume)'


def test_a_network_file_holds_contiguous_weights_and_the_networks_options(tmp_path):
    weight = torch.rand(2, 3, 4, 5).to(memory_format=torch.channels_last)
    checkpoints = Checkpoints(run_opt(tmp_path))
    checkpoints.save_network({'params': {'w': weight}, 'params_ema': {'w': weight * 2}}, 'net_g', -1)
    saved = torch.load(tmp_path / 'net_g_latest.pth', weights_only=True)
    assert saved.keys() == {'params', 'params_ema', 'network_g'}
    assert saved['network_g'] == {'type': 'CNLRN', 'n_feats': 16}
    assert saved['params']['w'].is_contiguous() and torch.equal(saved['params']['w'], weight)
    assert torch.equal(saved['params_ema']['w'], weight * 2)


@pytest.mark.parametrize('fp16', [False, True])
def test_a_training_state_holds_the_loss_scale_only_when_fp16_scales(tmp_path, fp16):
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters())
    scaler = torch.amp.GradScaler('cpu', enabled=fp16, init_scale=256.0)
    checkpoints = Checkpoints(run_opt(tmp_path))
    checkpoints.save_training_state(3, -1, [optimizer], [], scaler)  # the final save writes no state
    assert not list(tmp_path.iterdir())
    checkpoints.save_training_state(3, 12, [optimizer], [], scaler)
    state = torch.load(tmp_path / '12.state', weights_only=True)
    assert (state['epoch'], state['iter'], state['schedulers']) == (3, 12, [])
    assert state['optimizers'] == [optimizer.state_dict()]
    assert ('scaler' in state) is fp16 and (not fp16 or state['scaler']['scale'] == 256.0)


def optimizer_state(*group_sizes):
    """A training state's optimizer entry with parameter groups of these sizes."""
    return {'param_groups': [{'params': list(range(n))} for n in group_sizes]}


def test_a_state_whose_optimizer_has_other_parameter_groups_is_refused(tmp_path):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1)) for _ in range(3)], lr=0.1)
    checkpoints = Checkpoints(run_opt(tmp_path))
    checkpoints.check_resumable({'optimizers': [optimizer_state(3)], 'schedulers': []}, [optimizer])
    with pytest.raises(UserError) as err:
        checkpoints.check_resumable({'optimizers': [optimizer_state(1, 2)], 'schedulers': []}, [optimizer])
    assert str(err.value).startswith(
        "exp/7.state: cannot resume: its optimizer has 2 parameter group(s) of 1, 2 tensors, this run's has "
        '1 parameter group(s) of 3 tensors;'
    )


def test_a_state_whose_schedule_ends_before_total_iter_is_refused(tmp_path):
    checkpoints = Checkpoints(run_opt(tmp_path))
    checkpoints.check_resumable({'optimizers': [], 'schedulers': [{'periods': [4, 6]}, {}]}, [])
    with pytest.raises(UserError, match=r"^exp/7.state: cannot resume to train:total_iter 10: its scheduler's "):
        checkpoints.check_resumable({'optimizers': [], 'schedulers': [{'periods': [4, 5]}]}, [])
