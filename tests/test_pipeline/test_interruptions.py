"""``basicsr train|test`` and ``cnlrn infer`` in this process, interrupted or failing: Ctrl-C, a full disk, an
experiment another run holds. Each says in one line what was kept, and nothing complete is lost.

test_training_pipeline.py runs two real trainings of one experiment side by side (slow).
"""

import errno
import fcntl
import os
import sys

import basicsr.train
import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models.sr_model import SRModel

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.inference import upscale
from cnlrn_arch.models.cnlrn_model import CNLRNModel
from cnlrn_arch.training.basicsr_overrides import OVERRIDDEN
from cnlrn_cli.main import main as cnlrn_main
from tests.helpers import (
    TINY_CNLRN,
    TINY_CNLRN_ARGS,
    assert_one_line_error,
    derive_options,
    disk_fills_half_way,
    make_tiny_reds,
)
from tests.test_pipeline.test_training_pipeline import joint_options

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_reds(str(tmp_path_factory.mktemp('data')))


@pytest.fixture
def root(tmp_path, monkeypatch):
    """The folder the runs start in (experiments/ and results/ appear there), resolved as BasicSR sees it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()


def interrupt_at(monkeypatch, iteration, model_class=CNLRNModel):
    """Ctrl-C during training iteration ``iteration`` of a ``model_class``."""
    optimize = model_class.optimize_parameters

    def optimize_parameters(self, current_iter):
        if current_iter == iteration:
            raise KeyboardInterrupt
        optimize(self, current_iter)

    monkeypatch.setattr(model_class, 'optimize_parameters', optimize_parameters)


def newest_state(root, name):
    return max(int(p.stem) for p in (root / 'experiments' / name / 'training_states').glob('*.state'))


def basicsr_as_found():
    """basicsr's overridden attributes as they are now: a run puts them back when it ends."""
    return [getattr(module, name) for module, name, _ in OVERRIDDEN]


def test_ctrl_c_during_training_names_the_last_checkpoint_and_auto_resume_goes_on(
    root, data, run_basicsr, monkeypatch, capsys
):
    opt = joint_options(root, data, 'ctrl_c', 8)
    interrupt_at(monkeypatch, 5)
    argv, basicsr_before = list(sys.argv), basicsr_as_found()
    assert run_basicsr('train', '-opt', opt) == 130
    models = root / 'experiments/ctrl_c/models'
    assert capsys.readouterr().err == (
        f'basicsr train: interrupted; last complete checkpoint: {models}/net_g_4.pth, iter 4 '
        '(resume with --auto_resume)\n'
    )
    assert sys.argv == argv and basicsr_as_found() == basicsr_before  # the run's own ended with it

    monkeypatch.delattr(CNLRNModel, 'optimize_parameters')  # RobustSRModel's again: no Ctrl-C
    assert run_basicsr('train', '-opt', opt, '--auto_resume') == 0  # the lock went with the interrupted run
    # resumed, not started afresh (which would have archived the folder)
    assert newest_state(root, 'ctrl_c') == 8 and not list(root.glob('experiments/ctrl_c_archived_*'))
    assert sys.argv == argv and basicsr_as_found() == basicsr_before


def test_ctrl_c_before_the_first_checkpoint_says_so(root, data, run_basicsr, monkeypatch, capsys):
    interrupt_at(monkeypatch, 1)
    assert run_basicsr('train', '-opt', joint_options(root, data, 'ctrl_c_early', 4)) == 130
    assert capsys.readouterr().err == 'basicsr train: interrupted; no checkpoint saved yet\n'


def test_ctrl_c_before_basicsr_parsed_the_options_or_in_a_model_of_basicsrs_own(
    root, data, run_basicsr, monkeypatch, capsys
):
    """What a run left is read from its experiment folder: any model's checkpoints are named."""

    def ctrl_c(root_path, is_train):
        raise KeyboardInterrupt

    parse_options = basicsr.train.parse_options
    monkeypatch.setattr(basicsr.train, 'parse_options', ctrl_c)
    assert run_basicsr('train', '-opt', joint_options(root, data, 'ctrl_c_setup', 4)) == 130
    assert capsys.readouterr().err == 'basicsr train: interrupted before training started; this run saved nothing\n'

    monkeypatch.setattr(basicsr.train, 'parse_options', parse_options)
    interrupt_at(monkeypatch, 3, SRModel)
    opt = joint_options(root, data, 'ctrl_c_sr', 4, model_type='SRModel')
    with open(opt) as f:
        options = yaml.safe_load(f)
    del options['train']['optim_g']['lr_deblur']  # CNLRNModel's
    with open(opt, 'w') as f:
        yaml.safe_dump(options, f)
    assert run_basicsr('train', '-opt', opt) == 130
    models = root / 'experiments/ctrl_c_sr/models'
    assert capsys.readouterr().err == (
        f'basicsr train: interrupted; last complete checkpoint: {models}/net_g_2.pth, iter 2 '
        '(resume with --auto_resume)\n'
    )


def test_a_full_disk_while_saving_stops_training_and_keeps_the_last_checkpoint(
    root, data, run_basicsr, monkeypatch, capsys
):
    opt = joint_options(root, data, 'disk_full', 6)
    real_save = torch.save
    disk_fills_half_way(monkeypatch, after=2)  # iteration 2's network and state, then nothing
    assert run_basicsr('train', '-opt', opt) == 2
    models, states = root / 'experiments/disk_full/models', root / 'experiments/disk_full/training_states'
    err = capsys.readouterr().err
    assert_one_line_error(
        err,
        f'basicsr train: error: cannot write {models}/net_g_4.pth: No space left on device on the disk of {models} (',
        f' MiB free); training stopped, last complete checkpoint: {models}/net_g_2.pth (resume with --auto_resume)',
    )
    assert os.listdir(models) == ['net_g_2.pth'] and os.listdir(states) == ['2.state']

    monkeypatch.setattr(torch, 'save', real_save)  # space made
    assert run_basicsr('train', '-opt', opt, '--auto_resume') == 0
    assert newest_state(root, 'disk_full') == 6


def test_a_full_disk_while_basicsr_test_writes_images_is_one_line_naming_the_image(
    root, data, run_basicsr, monkeypatch, capsys
):
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, root / 'net.pth')
    test = dict(
        num_gpu=0,
        network_g=TINY_CNLRN,
        datasets=dict(test_1=dict(dataroot_gt=data['val_sharp'], dataroot_lq=data['val_blur_bicubic_X4'])),
        path=dict(pretrain_network_g=str(root / 'net.pth'), param_key_g='params'),
        val=dict(pbar=False),
    )
    opt = derive_options('options/test_val300.yml', root / 'test.yml', test)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', disk_full)
    assert run_basicsr('test', '-opt', opt) == 2
    images = root / 'results/CNLRN_Val300/visualization/Val300'
    assert_one_line_error(
        capsys.readouterr().err,
        f'basicsr test: error: cannot write {images}/000_00000000_CNLRN_Val300.png: No space left on device '
        f'on the disk of {images} (',
    )
    assert os.listdir(images) == []


def test_a_second_run_of_a_locked_experiment_is_refused_and_its_folder_left_alone(root, data, run_basicsr, capsys):
    """In this process the other run holds the lock through a descriptor of its own; test_training_pipeline.py
    runs it in another process."""
    opt = joint_options(root, data, 'held', 4)
    (root / 'experiments/held').mkdir(parents=True)
    with open(root / 'experiments/.held.lock', 'w') as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.write('4242 node7\n')
        other.flush()
        for resume in ([], ['--auto_resume']):
            assert run_basicsr('train', '-opt', opt, *resume) == 2
            assert_one_line_error(
                capsys.readouterr().err,
                f"basicsr train: error: experiment 'held' is being trained by process 4242 on node7 "
                f'(lock {root}/experiments/.held.lock): wait for that run to end or stop it, '
                'or set another name in the option file',
            )
    assert sorted(os.listdir(root / 'experiments')) == ['.held.lock', 'held']  # not archived
    assert os.listdir(root / 'experiments/held') == []


def test_ctrl_c_during_cnlrn_infer_says_how_many_images_were_written(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir()
    out.mkdir()
    for name in ('a', 'b', 'c'):
        cv2.imwrite(str(src / f'{name}.png'), np.full((8, 8, 3), 100, np.uint8))
    # outputs of an earlier run (cnlrn infer replaces only its own): a is written again, c is not reached
    for name in ('a', 'c'):
        upscale.write_png(out / f'{name}_cnlrn.png', [np.zeros((4, 4, 3), np.uint8)])
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'tiny.yml').write_text(yaml.safe_dump({'network_g': TINY_CNLRN}))
    write_png = upscale.write_png
    calls = []

    def ctrl_c_at_the_third(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write_png(path, image)

    monkeypatch.setattr(upscale, 'write_png', ctrl_c_at_the_third)
    status = cnlrn_main(
        [
            'infer',
            '-i',
            str(src),
            '-o',
            str(out),
            '--weights',
            str(tmp_path / 'net.pth'),
            '--opt',
            str(tmp_path / 'tiny.yml'),
        ]
    )
    assert status == 130
    assert capsys.readouterr().err.splitlines()[-1] == f'cnlrn infer: interrupted; 2 images written to {out}'
