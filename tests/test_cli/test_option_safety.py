"""Option files through the commands, in this process: no YAML tag runs, ``--force_yml`` is checked like the file,
resume states and the output folder are one-line errors, and the experiment records the options it ran."""

import os

import numpy as np
import pytest
import torch
import yaml

from cnlrn_cli.main import main as cnlrn_main
from tests.helpers import assert_one_line_error, exit_status, make_tiny_reds, tiny_training, write_image

TAG = '!!python/object/apply:os.system ["touch {marker}"]'
TEST_OPTIONS = 'name: x\nmodel_type: CNLRNModel\nnum_gpu: 0\nnetwork_g:\n  type: CNLRN\n  n_feats: {value}\n'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_reds(str(tmp_path_factory.mktemp('data')))


# -- YAML tags never run ---------------------------------------------------------------------------


@pytest.mark.parametrize('command', ['basicsr train', 'basicsr test', 'cnlrn infer'])
def test_tag_in_option_file_never_runs(command, tmp_path, run_basicsr, capsys):
    marker = tmp_path / 'MARKER'
    opt = tmp_path / 'evil.yml'
    opt.write_text(TEST_OPTIONS.format(value=TAG.format(marker=marker)))
    if command == 'cnlrn infer':
        weights = tmp_path / 'w.pth'
        torch.save({}, weights)
        write_image(tmp_path / 'in' / 'a.png', np.zeros((8, 8, 3), np.uint8))
        argv = ['infer', '-i', tmp_path / 'in', '-o', tmp_path / 'out', '--weights', weights, '--opt', opt]
        status = exit_status(cnlrn_main, [str(a) for a in argv])
    else:
        status = run_basicsr(command.split()[1], '-opt', opt)
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, f'{opt}:6:12: tag !!python/object/apply:os.system is not allowed')
    assert not marker.exists()


def test_tag_in_force_yml_never_runs(tmp_path, run_basicsr, capsys):
    marker = tmp_path / 'MARKER'
    opt = tmp_path / 'o.yml'
    opt.write_text(TEST_OPTIONS.format(value=16))
    entry = f'network_g:n_feats={TAG.format(marker=marker)}'
    assert run_basicsr('test', '-opt', opt, '--force_yml', entry) == 2
    assert_one_line_error(
        capsys.readouterr().err, f'--force_yml {entry}: invalid value: tag !!python/object/apply:os.system is not'
    )
    assert not marker.exists()


def test_duplicate_key_names_both_lines(tmp_path, run_basicsr, capsys):
    opt = tmp_path / 'o.yml'
    opt.write_text(TEST_OPTIONS.format(value=16) + 'num_gpu: 1\n')
    assert run_basicsr('test', '-opt', opt) == 2
    assert_one_line_error(capsys.readouterr().err, f"{opt}:7:1: duplicate key 'num_gpu' (first at line 3)")


# -- --force_yml is checked with the file ----------------------------------------------------------


def test_force_yml_runs_checked_and_recorded(tmp_path, data, run_basicsr, monkeypatch, capsys):
    """num_gpu: 1 in the file on a machine without CUDA trains on the CPU with --force_yml num_gpu=0; the
    experiment folder keeps the options that ran, as plain data under the file's name."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.chdir(tmp_path)
    opt = tiny_training(tmp_path, data, num_gpu=1)
    assert run_basicsr('train', '-opt', opt, '--force_yml', 'num_gpu=0', 'train:total_iter=1') == 0, capsys.readouterr()
    with open(tmp_path / 'experiments' / 'tiny' / 'tiny.yml') as f:
        recorded = yaml.safe_load(f)
    assert recorded['num_gpu'] == 0 and recorded['train']['total_iter'] == 1
    assert os.path.isfile(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')


def test_force_yml_value_is_checked(tmp_path, data, run_basicsr, capsys):
    opt = tiny_training(tmp_path, data)
    assert run_basicsr('train', '-opt', opt, '--force_yml', 'train:total_iter=-1') == 2
    assert capsys.readouterr().err.strip() == (
        f'basicsr train: error: {opt} with --force_yml: train:total_iter must be an integer >= 1, got -1'
    )


def test_force_yml_unknown_section(tmp_path, data, run_basicsr, capsys):
    opt = tiny_training(tmp_path, data)
    assert run_basicsr('train', '-opt', opt, '--force_yml', 'train:optim:lr=1') == 2
    assert_one_line_error(capsys.readouterr().err, f'--force_yml train:optim:lr=1: {opt} has no option train:optim')


# -- resume states ---------------------------------------------------------------------------------


def test_missing_resume_state(tmp_path, data, run_basicsr, capsys):
    opt = tiny_training(tmp_path, data, path=dict(pretrain_network_deblur=None, resume_state='none/3.state'))
    assert run_basicsr('train', '-opt', opt) == 2
    assert_one_line_error(capsys.readouterr().err, f'{opt}: path:resume_state: training state not found: none/3.state')


def test_network_checkpoint_as_resume_state(tmp_path, data, run_basicsr, capsys):
    checkpoint = tmp_path / 'net_g_2.pth'
    torch.save({'params': {'w': torch.zeros(1)}}, checkpoint)
    opt = tiny_training(tmp_path, data, path=dict(pretrain_network_deblur=None, resume_state=str(checkpoint)))
    assert run_basicsr('train', '-opt', opt) == 2
    assert_one_line_error(
        capsys.readouterr().err,
        f'{opt}: path:resume_state: {checkpoint} is not a training state',
        'set path:pretrain_network_g',
    )


@pytest.mark.parametrize(
    'lr_deblur, message',
    [
        (
            1e-4,  # one learning rate saved, two parameter groups now
            [
                'cannot resume: its optimizer has 1 parameter group(s) of ',
                "this run's has 2 parameter group(s) of ",
                'train:optim_g:lr_deblur, train:freeze_deblur or network_g differ',
            ],
        ),
        (
            None,  # the saved scheduler keeps its periods: past them basicsr fails with a TypeError
            [
                "cannot resume to train:total_iter 4: its scheduler's periods [2] end at iter 2",
                'start a new run from its weights (path:pretrain_network_g)',
            ],
        ),
    ],
    ids=['optimizer layout', 'past the saved schedule'],
)
def test_resume_that_cannot_go_on_is_one_line(lr_deblur, message, tmp_path, data, run_basicsr, monkeypatch, capsys):
    """The state of a 2-iteration run (one learning rate, periods [2]) resumed to 4 iterations, periods [4]."""
    monkeypatch.chdir(tmp_path)
    assert run_basicsr('train', '-opt', tiny_training(tmp_path, data, name='one')) == 0, capsys.readouterr()
    state = tmp_path / 'experiments' / 'one' / 'training_states' / '2.state'
    capsys.readouterr()
    opt = tiny_training(
        tmp_path,
        data,
        name='one',
        path=dict(pretrain_network_deblur=None, resume_state=str(state)),
        train=dict(total_iter=4, optim_g=dict(lr_deblur=lr_deblur), scheduler=dict(periods=[4])),
    )
    assert run_basicsr('train', '-opt', opt) == 2
    assert_one_line_error(capsys.readouterr().err, f'{state}: {message[0]}', *message[1:])


def test_resume_under_another_name_continues_in_a_new_experiment(tmp_path, data, run_basicsr, monkeypatch, capsys):
    """A state of experiment 'one' resumed as 'two': 'two' gets its folders, the first's are left as they were."""
    monkeypatch.chdir(tmp_path)
    four = dict(total_iter=4, optim_g=dict(lr_deblur=None), scheduler=dict(periods=[4]))
    assert run_basicsr('train', '-opt', tiny_training(tmp_path, data, name='one', train=four)) == 0, capsys.readouterr()
    state = tmp_path / 'experiments' / 'one' / 'training_states' / '2.state'
    before = sorted(os.listdir(tmp_path / 'experiments' / 'one' / 'models'))
    opt = tiny_training(
        tmp_path,
        data,
        name='two',
        path=dict(pretrain_network_deblur=None, resume_state=str(state)),
        train=four,
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=True),
    )
    assert run_basicsr('train', '-opt', opt) == 0, capsys.readouterr()
    two = tmp_path / 'experiments' / 'two'
    assert (two / 'models' / 'net_g_4.pth').is_file() and (two / 'training_states' / '4.state').is_file()
    assert (two / 'two.yml').is_file()
    assert sorted(os.listdir(tmp_path / 'experiments' / 'one' / 'models')) == before


# -- the output folder -----------------------------------------------------------------------------


def test_read_only_working_directory(tmp_path, data, run_basicsr, monkeypatch, capsys):
    opt = tiny_training(tmp_path, data)
    read_only = tmp_path / 'ro'
    read_only.mkdir()
    read_only.chmod(0o555)
    monkeypatch.chdir(read_only)
    if os.access(read_only, os.W_OK):  # root writes anyway: make creating folders there fail as it would
        makedirs = os.makedirs

        def refuse(name, *args, **kwargs):
            if str(name).startswith(str(read_only)):
                raise PermissionError(13, 'Permission denied', str(name))
            makedirs(name, *args, **kwargs)

        monkeypatch.setattr(os, 'makedirs', refuse)
    try:
        assert run_basicsr('train', '-opt', opt) == 2
    finally:
        read_only.chmod(0o755)
    assert_one_line_error(
        capsys.readouterr().err, f'cannot create {read_only}/experiments (Permission denied): run from a folder'
    )


def test_tb_logger_that_cannot_be_a_folder(tmp_path, data, run_basicsr, monkeypatch, capsys):
    """tb_logger is a file here, so no event folder can be made in it (read-only alike, even for root)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'tb_logger').write_text('')
    opt = tiny_training(tmp_path, data, logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=True))
    assert run_basicsr('train', '-opt', opt) == 2
    assert_one_line_error(
        capsys.readouterr().err, f'{tmp_path}/tb_logger is a file, not a folder: move it away or run from another'
    )
    assert not (tmp_path / 'experiments' / 'tiny').exists()


# -- deterministic runs need an LR patch the network does not pad ----------------------------------


def test_deterministic_patch_that_needs_padding_is_refused(tmp_path, data, run_basicsr, monkeypatch, capsys):
    """Reflection padding's backward has no deterministic CUDA kernel: refused before training, on any device."""
    monkeypatch.chdir(tmp_path)  # the run's experiments/ goes there, not into the working tree
    opt = tiny_training(tmp_path, data, deterministic=True)
    assert run_basicsr('train', '-opt', opt, '--force_yml', 'datasets:train:gt_size=24') == 2
    assert_one_line_error(
        capsys.readouterr().err,
        'deterministic: true needs the LR training patch',
        '= 6) to be a multiple of 4',
        'set gt_size to a multiple of 16',
    )
    assert run_basicsr('train', '-opt', opt) == 0  # LR patch 8
