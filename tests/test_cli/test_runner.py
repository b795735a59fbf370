"""The ``basicsr`` and ``cnlrn`` commands in this process: usage, plugin loading and option errors.

test_console_scripts.py starts the installed scripts.
"""

import glob
import os
import re

import pytest

from cnlrn_cli.main import main as cnlrn_main
from tests.helpers import REPO_DIR, assert_one_line_error, exit_status


@pytest.mark.parametrize(
    'argv', [('basicsr', '--help'), ('basicsr', 'train', '--help'), ('basicsr', 'test', '--help'), ('cnlrn', '--help')]
)
def test_help_prints_usage(argv, run_basicsr, capsys):
    status = run_basicsr(*argv[1:]) if argv[0] == 'basicsr' else exit_status(cnlrn_main, list(argv[1:]))
    stdout, stderr = capsys.readouterr()
    assert status == 0, stderr
    assert stdout.startswith('usage:')
    if argv[1:2] in (('train',), ('test',)):
        assert '-opt OPT' in stdout and '--auto_resume' in stdout


def test_cnlrn_version(capsys):
    assert exit_status(cnlrn_main, ['--version']) == 0 and capsys.readouterr().out.strip() == 'cnlrn 0.1.0'


def test_plugin_entry_point_is_declared():
    from importlib.metadata import entry_points

    assert 'cnlrn_arch' in [e.value for e in entry_points(group='basicsr.plugins')]


def test_missing_option_file(tmp_path, run_basicsr, capsys):
    assert run_basicsr('train', '-opt', tmp_path / 'absent.yml') == 2
    assert_one_line_error(capsys.readouterr().err, 'option file not found', 'absent.yml')


def test_yaml_syntax_error_names_line(tmp_path, run_basicsr, capsys):
    opt = tmp_path / 'broken.yml'
    opt.write_text('name: x\nmodel_type: SRModel\n  oops: [\n')
    assert run_basicsr('test', '-opt', opt) == 2
    assert_one_line_error(capsys.readouterr().err, 'broken.yml:3:', 'invalid YAML')


def test_unregistered_arch_lists_registered_ones(tmp_path, run_basicsr, capsys):
    opt = tmp_path / 'arch.yml'
    opt.write_text(
        'name: x\nmodel_type: SRModel\nnum_gpu: 0\nnetwork_g:\n  type: CNLRNN\n'
        'datasets:\n  test_1:\n    type: PairedImageDataset\npath: {}\n'
    )
    assert run_basicsr('test', '-opt', opt) == 2
    assert_one_line_error(
        capsys.readouterr().err, "network 'CNLRNN' is not registered", 'CNLRN, CNLRNPreDeblur', 'RCAN'
    )


def test_missing_required_key(tmp_path, run_basicsr, capsys):
    opt = tmp_path / 'nodata.yml'
    opt.write_text('name: x\nmodel_type: SRModel\nnum_gpu: 0\npath: {}\nnetwork_g:\n  type: CNLRN\n')
    assert run_basicsr('test', '-opt', opt) == 2
    assert_one_line_error(capsys.readouterr().err, 'missing required option datasets')


BASE = 'name: x\nmodel_type: CNLRNModel\npath: {}\ndatasets: {}\n'


@pytest.mark.parametrize(
    'body, message',
    [
        ('num_gpu: 0\nnetwork_g: {type: CNLRN, n_feats: 30}\n', 'network_g: cannot build CNLRN: n_feats=30 must be'),
        ('num_gpu: 0\nnetwork_g: {type: CNLRN, nfeats: 32}\n', "unexpected keyword argument 'nfeats'"),
        ('network_g: {type: CNLRN}\n', 'option num_gpu must be 0 (CPU), a GPU count'),
        ('num_gpu: 0\n', 'missing required option network_g'),
        ('num_gpu: 0\nnetwork_g: {type: CNLRN}\ntrain: {}\n', 'missing required option datasets:train'),
    ],
)
def test_option_check_names_the_problem(tmp_path, body, message):
    from cnlrn_arch.options.check import check_options
    from cnlrn_base.errors import UserError

    opt = tmp_path / 'o.yml'
    opt.write_text(BASE + body)
    with pytest.raises(UserError, match=re.escape(message)):
        check_options(str(opt), is_train='train' in body)


def test_gpu_requested_without_cuda(tmp_path, monkeypatch):
    import torch

    from cnlrn_arch.options.check import check_options
    from cnlrn_base.errors import UserError

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    opt = tmp_path / 'o.yml'
    opt.write_text(BASE + 'num_gpu: 1\nnetwork_g: {type: CNLRN}\n')
    with pytest.raises(UserError, match='num_gpu is 1 but no CUDA GPU is available here; set num_gpu: 0'):
        check_options(str(opt), is_train=False)
    assert check_options(str(opt), is_train=False, overrides=['num_gpu=0'])['num_gpu'] == 0


ALL_OPTION_FILES = sorted(glob.glob(os.path.join(REPO_DIR, 'options', '**', '*.yml'), recursive=True))


@pytest.mark.parametrize('path', ALL_OPTION_FILES, ids=lambda p: os.path.relpath(p, REPO_DIR))
def test_shipped_option_files_pass_the_checks(path, tmp_path, monkeypatch):
    """Registered types, required keys, the schema and buildable networks (on the meta device) in every option
    file; the plain copy basicsr parses holds what basicsr's own loader makes of the file."""
    import torch
    import yaml
    from basicsr.utils.options import ordered_yaml

    from cnlrn_arch.options.check import check_options
    from cnlrn_base.option_file import write_option_file

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # the REDS files ask for a GPU
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # the GAN files' perceptual loss asks for VGG19's weights
    (tmp_path / 'hub/checkpoints').mkdir(parents=True)
    (tmp_path / 'hub/checkpoints/vgg19-dcbb9e9d.pth').touch()
    with open(path, encoding='utf-8') as f:
        is_train = 'train:' in f.read()
    opt = check_options(path, is_train=is_train)
    write_option_file(opt, tmp_path / 'plain.yml', 'copy')
    with open(path, encoding='utf-8') as original, open(tmp_path / 'plain.yml', encoding='utf-8') as plain:
        assert yaml.load(plain, Loader=ordered_yaml()[0]) == yaml.load(original, Loader=ordered_yaml()[0])
