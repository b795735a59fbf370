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

from tests.helpers import ENV, REPO_DIR, make_tiny_reds, tiny_training

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
    python = venv / 'bin' / 'python'
    site_packages = run(python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))', cwd=venv).strip()
    with open(os.path.join(site_packages, 'project_dependencies.pth'), 'w', encoding='utf-8') as f:
        f.write(sysconfig.get_path('purelib') + '\n')
    # --ignore-installed: pip sees this environment's editable install through the .pth line and must leave it be
    run(python, '-m', 'pip', 'install', '-q', '--no-deps', '--ignore-installed', wheel, cwd=tmp_path)
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
    assert os.path.isfile(where[1]) and os.path.isfile(os.path.join(where[2], 'demo', 'joint.yml'))

    # the shipped checkpoint, the default of --weights
    lr = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert cv2.imwrite(str(work / 'small.png'), lr)
    out = run(bin_dir / 'cnlrn', 'infer', '-i', 'small.png', '-o', 'restored', '--device', 'cpu', cwd=work)
    assert 'weights: CNLRN_demo.pth, the shipped demo checkpoint' in out
    assert cv2.imread(str(work / 'restored' / 'small_cnlrn.png')).shape == (96, 128, 3)

    # the shipped options/demo/joint.yml, a tiny network, two iterations on tiny data
    shipped_option = os.path.join(site_packages, 'cnlrn_base', 'options', 'demo', 'joint.yml')
    tiny_training(work, make_tiny_reds(str(work / 'data')), name='wheel', option=shipped_option)
    run(bin_dir / 'basicsr', 'train', '-opt', 'wheel.yml', cwd=work)
    trained = work / 'experiments' / 'wheel' / 'models' / 'net_g_2.pth'
    assert trained.is_file()

    out = run(bin_dir / 'cnlrn', 'export', '--weights', trained, '--onnx', 'tiny.onnx', cwd=work)
    assert out.startswith('wrote tiny.onnx: network_g {"type": "CNLRN"')
    assert (work / 'tiny.onnx').stat().st_size > 0
