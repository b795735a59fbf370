"""The synthetic camera-shake blur and the ``cnlrn make-demo-data`` command."""

import os
import re
import shutil

import cv2
import numpy as np
import pytest
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.utils.matlab_functions import imresize

from cnlrn_arch.data.motion_blur import blur, motion_kernel, shake_kernels
from cnlrn_base.project import TRIPLE_SETS
from cnlrn_cli.main import main
from tests.helpers import decode_image, folder_contents, lmdb_items, run_command

N_TRAIN_PHOTOS, CROPS = 13, 2


def kernel(seed, length=15.0, heading=0.3):
    return motion_kernel(np.random.default_rng(seed), length, heading)


def test_kernel_is_normalised_and_centred():
    for seed in range(20):
        k = kernel(seed)
        assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.min() >= 0
        assert k.sum() == pytest.approx(1, abs=1e-5)
        # centre of mass on the centre pixel: the blur does not shift the image
        ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
        c = k.shape[0] // 2
        assert (k * ys).sum() == pytest.approx(c, abs=1e-3) and (k * xs).sum() == pytest.approx(c, abs=1e-3)


def test_kernel_deterministic_per_seed_and_different_across_seeds():
    assert np.array_equal(kernel(3), kernel(3))
    a, b = kernel(3), kernel(4)
    assert a.shape != b.shape or not np.allclose(a, b)


def test_kernel_grows_with_length():
    assert kernel(0, length=4).shape[0] < kernel(0, length=30).shape[0] <= 2 * 30 + 3
    # a blur path, not a point: its mass is spread over many pixels
    assert (kernel(0, length=30) > 0).sum() > 30


def test_blur_keeps_flat_image_and_blurs_edges():
    rng = np.random.default_rng(0)
    kernels = shake_kernels(rng, (10, 20))
    assert 2 <= len(kernels) <= 4
    flat = np.full((48, 64, 3), 0.4, np.float32)
    assert np.allclose(blur(flat, kernels, rng), 0.4, atol=1e-5)  # the weight maps sum to 1
    edge = np.zeros((48, 64, 3), np.float32)
    edge[:, 32:] = 1
    out = blur(edge, kernels, rng)
    assert out.shape == edge.shape and np.abs(out - edge).max() > 0.2


def make_args(out, *args):
    return ['make-demo-data', '--out', str(out), '--crops-per-photo', str(CROPS), *args]


def make(out, *args):
    """``cnlrn make-demo-data`` in this process; return ``out``."""
    assert main(make_args(out, *args)) == 0
    return out


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    return make(tmp_path_factory.mktemp('demo') / 'demo')


def test_training_lmdbs(demo):
    expected = [f'{c:03d}/{f:08d}' for c in range(N_TRAIN_PHOTOS) for f in range(CROPS)]
    for name, side in zip(TRIPLE_SETS, (128, 32, 32)):
        path = demo / f'train_{name}.lmdb'
        items = lmdb_items(path)
        assert sorted(items) == expected
        meta = (path / 'meta_info.txt').read_text().splitlines()
        assert meta == [f'{key}.png ({side},{side},3) 1' for key in expected]
        for data in items.values():
            assert decode_image(data).shape == (side, side, 3)


def test_validation_folders(demo):
    names = [sorted(os.listdir(demo / 'val' / name)) for name in TRIPLE_SETS]
    assert names[0] and names[0] == names[1] == names[2]
    assert all(re.fullmatch(r'\d{3}_\d{8}\.png', n) for n in names[0])
    for n in names[0]:
        hr, blurry, sharp_lr = (cv2.imread(str(demo / 'val' / name / n), cv2.IMREAD_UNCHANGED) for name in TRIPLE_SETS)
        assert hr.shape == (256, 256, 3) and blurry.shape == sharp_lr.shape == (64, 64, 3)


def test_bicubic_psnr_is_as_low_as_on_reds(demo):
    scores = []
    for n in os.listdir(demo / 'val' / 'sharp'):
        hr, blurry = (cv2.imread(str(demo / 'val' / name / n)) for name in TRIPLE_SETS[:2])
        up = np.clip(np.round(imresize(blurry / 255.0, 4) * 255), 0, 255).astype(np.uint8)
        scores.append(calculate_psnr(up, hr, crop_border=4))
    psnr = np.mean(scores)
    assert 22 <= psnr <= 26
    assert f'{psnr:.2f} dB PSNR' in (demo / 'README.txt').read_text()


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_blur(demo, tmp_path):
    """The installed command in a fresh process writes the bytes this process wrote; another seed other blur."""
    result = run_command('cnlrn', *make_args(tmp_path / 'again'), timeout=120)
    assert result.returncode == 0, result.stderr
    first = folder_contents(demo)
    assert folder_contents(tmp_path / 'again') == first
    other = folder_contents(make(tmp_path / 'other', '--seed', '1'))
    assert other.keys() == first.keys()
    blurry = [key for key in first if 'blur_bicubic_X4' in key and not key.endswith('meta_info.txt')]
    assert blurry and all(other[key] != first[key] for key in blurry)


def cli(capsys, out, *args):
    """``cnlrn make-demo-data`` in this process (for the paths that make nothing): (exit code, stdout, stderr)."""
    code = main(make_args(out, *args))
    return (code, *capsys.readouterr())


def test_existing_output(demo, tmp_path, capsys):
    stamp = os.path.getmtime(demo / 'README.txt')
    code, stdout, _ = cli(capsys, demo)
    assert code == 0 and 'already holds' in stdout
    assert os.path.getmtime(demo / 'README.txt') == stamp

    # demo data made with other settings is ours to remake (e.g. after `cnlrn demo --quick`)
    other = tmp_path / 'other'
    shutil.copytree(demo, other)
    code, stdout, _ = cli(capsys, other, '--seed', '5')
    assert code == 0 and 'made with other settings' in stdout and 'remaking' in stdout
    assert (other / 'README.txt').read_text().startswith(f'CNLRN demo data: seed 5, crops-per-photo {CROPS}')

    (tmp_path / 'mine.txt').write_text('not demo data')
    code, _, stderr = cli(capsys, tmp_path, '--force')
    assert code == 2 and 'not a demo data folder' in stderr
    assert (tmp_path / 'mine.txt').exists()
