"""The wheel: built from this tree, installed (not editable) into a fresh virtual environment, its commands run.

The environment reuses this one's torch and other dependencies through a ``.pth`` line naming this environment's
site-packages; that line adds the folder only, not the ``.pth`` files in it, so this environment's editable install
of the project stays out, which the test checks.
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import cv2
import numpy as np
import pytest
import yaml

from cnlrn_arch.options.option_file import deep_update
from tests.helpers import ENV, REPO_DIR, TINY_CNLRN, make_tiny_reds

pytestmark = pytest.mark.slow


def run(*args, cwd, timeout=300):
    """``args`` run in ``cwd``; their output, having checked that they succeeded."""
    env = {key: value for key, value in ENV.items() if key != 'PYTHONPATH'}
    result = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f'{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
    return result.stdout + result.stderr


def copy_of_the_tree(dst):
    """The files git tracks or would track, as they are in the working tree (links as links), copied to ``dst``.

    The wheel is built from the copy: setuptools' ``build/`` folder in the tree may hold files of earlier builds.
    """
    listed = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=REPO_DIR,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split('\0')):
        src = os.path.join(REPO_DIR, name)
        if not os.path.lexists(src):  # deleted in the working tree
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, name)), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), os.path.join(dst, name))
        else:
            shutil.copy2(src, os.path.join(dst, name))
    return dst


def installed_wheel(tmp_path):
    """A virtual environment holding the project's wheel; returns its ``bin`` folder and its site-packages."""
    source = copy_of_the_tree(tmp_path / 'source')
    pip = (sys.executable, '-m', 'pip')
    run(*pip, 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', tmp_path, source, cwd=source)
    (wheel,) = tmp_path.glob('cnlrn_arch-*.whl')
    venv = tmp_path / 'venv'
    run(sys.executable, '-m', 'venv', '--without-pip', venv, cwd=tmp_path)
    site_packages = subprocess.run(
        [venv / 'bin' / 'python', '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with open(os.path.join(site_packages, 'project_dependencies.pth'), 'w', encoding='utf-8') as f:
        f.write(sysconfig.get_path('purelib') + '\n')
    # --ignore-installed: pip sees this environment's editable install through the .pth line and must leave it be
    run(venv / 'bin' / 'python', '-m', 'pip', 'install', '-q', '--no-deps', '--ignore-installed', wheel, cwd=tmp_path)
    return venv / 'bin', site_packages


def test_the_installed_wheel_infers_exports_and_trains_from_an_empty_folder(tmp_path):
    bin_dir, site_packages = installed_wheel(tmp_path)
    work = tmp_path / 'empty'
    work.mkdir()

    where = run(
        bin_dir / 'python',
        '-c',
        'import cnlrn_arch, cnlrn_base.project as p; print(cnlrn_arch.__file__, p.DEMO_CHECKPOINT, p.OPTIONS_DIR)',
        cwd=work,
    ).split()
    assert [os.path.commonpath([path, site_packages]) for path in where] == [site_packages] * 3, where

    # the shipped checkpoint, the default of --weights
    lr = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert cv2.imwrite(str(work / 'small.png'), lr)
    out = run(bin_dir / 'cnlrn', 'infer', '-i', 'small.png', '-o', 'restored', '--device', 'cpu', cwd=work)
    assert 'weights: CNLRN_demo.pth, the shipped demo checkpoint' in out
    assert cv2.imread(str(work / 'restored' / 'small_cnlrn.png')).shape == (96, 128, 3)

    # the shipped options/joint.yml, a tiny network, two iterations on tiny data
    data = make_tiny_reds(str(work / 'data'))
    with open(os.path.join(site_packages, 'cnlrn_base', 'options', 'joint.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    loader = dict(
        num_worker_per_gpu=0,
        batch_size_per_gpu=1,
        gt_size=32,
        dataroot_gt=data['train_sharp'],
        dataroot_lq=data['train_blur_bicubic_X4'],
    )
    changes = dict(
        name='wheel',
        num_gpu=0,
        network_g=TINY_CNLRN,
        path=dict(pretrain_network_deblur=None),
        datasets=dict(train=loader, val=dict(dataroot_gt=data['val_sharp'], dataroot_lq=data['val_blur_bicubic_X4'])),
        train=dict(total_iter=2, scheduler=dict(periods=[2], restart_weights=[1])),
        val=dict(val_freq=2),
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False),
    )
    with open(work / 'tiny.yml', 'w', encoding='utf-8') as f:
        yaml.safe_dump(deep_update(opt, changes), f, sort_keys=False)
    run(bin_dir / 'basicsr', 'train', '-opt', 'tiny.yml', cwd=work)
    trained = work / 'experiments' / 'wheel' / 'models' / 'net_g_2.pth'
    assert trained.is_file()

    out = run(bin_dir / 'cnlrn', 'export', '--weights', trained, '--onnx', 'tiny.onnx', cwd=work)
    assert out.startswith('wrote tiny.onnx: network_g {"type": "CNLRN"')
    assert (work / 'tiny.onnx').stat().st_size > 0
