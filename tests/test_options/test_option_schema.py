"""The schema of numeric options: each kind of violation is one line with the key path and the allowed values."""

import pytest

from cnlrn_arch.options.check import check_options
from cnlrn_base.errors import UserError
from cnlrn_base.option_schema import check_schema
from tests.helpers import TINY_CNLRN, derive_options

BASE = dict(num_gpu=0, network_g=TINY_CNLRN, path=dict(pretrain_network_deblur=None))


def checked(tmp_path, changes):
    """check_options on options/joint.yml (CPU, tiny network) with ``changes``; the file's path."""
    path = derive_options('options/joint.yml', tmp_path / 'o.yml', dict(BASE, **changes))
    check_options(path, is_train=True)
    return path


def train(**values):
    return dict(train=values)


def loader(**values):
    return dict(datasets=dict(train=values))


def optim(**values):
    return train(optim_g=values)


def scheduler(**values):
    return train(scheduler=values)


@pytest.mark.parametrize(
    'changes, message',
    [
        (train(total_iter=-1), 'train:total_iter must be an integer >= 1, got -1'),
        (train(total_iter=2.5), 'train:total_iter must be an integer >= 1, got 2.5'),
        (train(total_iter=True), 'train:total_iter must be an integer >= 1, got True'),
        (train(total_iter=float('nan')), 'train:total_iter must be an integer >= 1, got nan'),
        (train(warmup_iter=-2), 'train:warmup_iter must be an integer >= -1, got -2'),
        (train(ema_decay=1), 'train:ema_decay must be a number in [0, 1), got 1'),
        (train(nonfinite_patience=0), 'train:nonfinite_patience must be an integer >= 1, got 0'),
        (loader(batch_size_per_gpu=[2]), 'datasets:train:batch_size_per_gpu must be an integer >= 1, got [2]'),
        (loader(batch_size_per_gpu=2.0), 'datasets:train:batch_size_per_gpu must be an integer >= 1, got 2.0'),
        (loader(num_worker_per_gpu=-1), 'datasets:train:num_worker_per_gpu must be an integer >= 0, got -1'),
        (loader(dataset_enlarge_ratio=0), 'datasets:train:dataset_enlarge_ratio must be a number >= 1, got 0'),
        (loader(gt_size='256'), "datasets:train:gt_size must be an integer >= 1, got '256'"),
        (loader(num_prefetch_queue=0), 'datasets:train:num_prefetch_queue must be an integer >= 1, got 0'),
        (optim(lr=[1e-4]), 'train:optim_g:lr must be a number > 0, got [0.0001]'),
        (optim(lr=0), 'train:optim_g:lr must be a number > 0, got 0'),
        (optim(lr=float('inf')), 'train:optim_g:lr must be a number > 0, got inf'),
        (
            optim(lr='1e-4'),
            "train:optim_g:lr must be a number > 0, got '1e-4' (text: YAML 1.1 reads a number without a dot as "
            'text; write 1.0e-4 or !!float 1e-4)',
        ),
        (optim(lr_deblur=-1e-5), 'train:optim_g:lr_deblur must be a number > 0 or ~, got -1e-05'),
        (optim(weight_decay=-1), 'train:optim_g:weight_decay must be a number >= 0, got -1'),
        (optim(betas=[0.9]), 'train:optim_g:betas must be a list of 2 numbers in [0, 1), got [0.9]'),
        (scheduler(periods=1000), 'train:scheduler:periods must be a list of integers >= 1, got 1000'),
        (scheduler(periods=[10, 0]), 'train:scheduler:periods must be a list of integers >= 1, got [10, 0]'),
        (scheduler(periods=[]), 'train:scheduler:periods must be a list of integers >= 1, got []'),
        (
            scheduler(restart_weights=[1, 'a']),
            "train:scheduler:restart_weights must be a list of numbers >= 0, got [1, 'a']",
        ),
        (scheduler(eta_min=-1e-7), 'train:scheduler:eta_min must be a number >= 0, got -1e-07'),
        (scheduler(milestones=[1.5]), 'train:scheduler:milestones must be a list of integers >= 1, got [1.5]'),
        (scheduler(restarts=[None]), 'train:scheduler:restarts must be a list of integers >= 0, got [None]'),
        (scheduler(gamma=0), 'train:scheduler:gamma must be a number > 0, got 0'),
        (
            scheduler(periods=[10, 20, 30, 40]),
            'train:scheduler:periods end at iter 100, before train:total_iter 1000000: the learning rate past them '
            'is undefined',
        ),
        (
            scheduler(periods=[500000, 500000], restart_weights=[1]),
            'train:scheduler:periods and train:scheduler:restart_weights must be as long, got 2 and 1',
        ),
        (
            scheduler(type='MultiStepRestartLR', milestones=[100], restarts=[0, 50], restart_weights=[1]),
            'train:scheduler:restarts and train:scheduler:restart_weights must be as long, got 2 and 1',
        ),
        (scheduler(periods=None), 'missing required option train:scheduler:periods'),
        (train(grad_opt=dict(loss_weight=-0.1)), 'train:grad_opt:loss_weight must be a number >= 0, got -0.1'),
        (dict(logger=dict(print_freq=0)), 'logger:print_freq must be an integer >= 1, got 0'),
        (
            dict(logger=dict(save_checkpoint_freq='5e3')),
            "logger:save_checkpoint_freq must be an integer >= 1, got '5e3' (text: YAML 1.1 reads a number without a "
            'dot as text; write 5.0e3 or !!float 5e3)',
        ),
        (dict(val=dict(val_freq=[2000])), 'val:val_freq must be an integer >= 1, got [2000]'),
        (
            dict(val=dict(metrics=dict(psnr=dict(crop_border=4.0)))),
            'val:metrics:psnr:crop_border must be an integer >= 0, got 4.0',
        ),
        (dict(scale=0), 'scale must be an integer >= 1, got 0'),
        (dict(manual_seed=-1), 'manual_seed must be an integer in [0, 2147483647] or ~, got -1'),
    ],
)
def test_schema_violation_is_one_line(tmp_path, changes, message):
    with pytest.raises(UserError) as err:
        checked(tmp_path, changes)
    assert str(err.value) == f'{tmp_path / "o.yml"}: {message}'


FOLDER_NAME = 'one folder name (no /, \\ or .., nothing outside experiments/ and results/)'


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(name='../../victim'), f"name must be {FOLDER_NAME}, got '../../victim'"),
        (dict(name='a/b'), f"name must be {FOLDER_NAME}, got 'a/b'"),
        (dict(name='..'), f"name must be {FOLDER_NAME}, got '..'"),
        (dict(name=''), f"name must be {FOLDER_NAME}, got ''"),
        (dict(name=5), f'name must be {FOLDER_NAME}, got 5'),
        (dict(model_type=['CNLRNModel']), "model_type must be text, got ['CNLRNModel']"),
        (dict(datasets='x'), "datasets must be a mapping, got 'x'"),
        (dict(datasets=dict(train=[1])), 'datasets:train must be a mapping, got [1]'),
        (loader(dataroot_gt=5), 'datasets:train:dataroot_gt must be text, got 5'),
        (loader(type=['PairedBlurSRDataset']), "datasets:train:type must be text, got ['PairedBlurSRDataset']"),
        (loader(io_backend='disk'), "datasets:train:io_backend must be a mapping or ~, got 'disk'"),
        (dict(network_g=dict(type={'a': 1})), "network_g:type must be text, got {'a': 1}"),
        (dict(val='x'), "val must be a mapping, got 'x'"),
        (dict(val=dict(metrics=['psnr'])), "val:metrics must be a mapping, got ['psnr']"),
        (dict(val=dict(metrics=dict(psnr=dict(type=1)))), 'val:metrics:psnr:type must be text, got 1'),
        (dict(val=dict(save_img='yes')), "val:save_img must be true or false, got 'yes'"),
        (train(pixel_opt=[1]), 'train:pixel_opt must be a mapping or ~, got [1]'),
        (train(optim_g='Adam'), "train:optim_g must be a mapping, got 'Adam'"),
        (dict(path=dict(BASE['path'], resume_state=3)), 'path:resume_state must be a path or ~, got 3'),
        (dict(path=dict(BASE['path'], strict_load_g='yes')), "path:strict_load_g must be true or false, got 'yes'"),
        (dict(logger=dict(use_tb_logger=1)), 'logger:use_tb_logger must be true or false, got 1'),
    ],
)
def test_wrong_type_at_any_level_is_one_line(tmp_path, changes, message):
    with pytest.raises(UserError) as err:
        checked(tmp_path, changes)
    assert str(err.value) == f'{tmp_path / "o.yml"}: {message}'


@pytest.mark.parametrize(
    'changes',
    [
        train(total_iter=5000.0, warmup_iter=-1, ema_decay=0.999),
        dict(logger=dict(print_freq=100.0, save_checkpoint_freq=5e3), val=dict(val_freq=2e3)),
        dict(manual_seed=None, train=dict(optim_g=dict(lr_deblur=None))),
        scheduler(type='MultiStepRestartLR', milestones=[100, 200.0], restarts=[0], restart_weights=[1], gamma=0.5),
    ],
)
def test_accepted_values(tmp_path, changes):
    checked(tmp_path, changes)


@pytest.mark.parametrize(
    'value, shown',
    [(10**400, str(10**400)), (1 << 20_000, r'an integer of more than \d+ digits')],
    ids=['past-float', 'past-repr'],  # pytest's own ids would repr the values
)
def test_an_integer_past_float_or_repr_is_one_line(value, shown):
    """As YAML's 0x... or a checkpoint's pickle give them: past float's range, or past what repr writes."""
    message = rf'w\.pth \(its stored options\): network_g:n_feats must be an integer in \[1, 256\], got {shown}$'
    with pytest.raises(UserError, match=message):
        check_schema({'network_g': {'n_feats': value}}, 'w.pth (its stored options)')
