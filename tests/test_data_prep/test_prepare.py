"""``cnlrn prepare-reds`` and ``cnlrn prepare-dvd`` on tiny fake data sets."""

import os
import shutil

import cv2
import numpy as np
import pytest

from cnlrn_cli.main import main
from tests.helpers import (
    assert_one_line_error,
    bicubic,
    decode_image,
    folder_contents,
    lmdb_items,
    run_command,
    write_image,
)

HR_SHAPE, LR_SHAPE = (16, 24, 3), (4, 6, 3)
# clip -> number of frames; validation clip 001 is long enough for frames 9 and 19
REDS_CLIPS = {'train': {'000': 2, '001': 3}, 'val': {'000': 12, '001': 21}}
VAL300_NAMES = ['000_00000009.png', '001_00000009.png', '001_00000019.png']
DVD_CLIPS = (
    '720p_240fps_2',
    'IMG_0003',
    'IMG_0021',
    'IMG_0030',
    'IMG_0031',
    'IMG_0032',
    'IMG_0033',
    'IMG_0037',
    'IMG_0039',
    'IMG_0049',
)
DVD_SHAPE = (18, 27, 3)  # cropped to 16 x 24


def read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob('*')}


def lmdb_images(path):
    return {key: decode_image(value) for key, value in lmdb_items(path).items()}


@pytest.fixture(scope='module')
def reds(tmp_path_factory):
    """A fake extracted REDS, prepared once by the command in this process (one worker, no pool)."""
    root = tmp_path_factory.mktemp('REDS')
    rng = np.random.default_rng(0)
    for split, clips in REDS_CLIPS.items():
        for clip, n in clips.items():
            for i in range(n):
                write_image(root / f'{split}_sharp' / clip / f'{i:08d}.png', rng.integers(0, 256, HR_SHAPE, np.uint8))
                write_image(
                    root / f'{split}_blur_bicubic' / 'X4' / clip / f'{i:08d}.png',
                    rng.integers(0, 256, LR_SHAPE, np.uint8),
                )
    assert main(['prepare-reds', '--root', str(root), '--workers', '1']) == 0
    return root


@pytest.mark.slow
def test_reds_real_command_with_a_pool_of_workers_writes_the_same(reds, tmp_path):
    """The installed command, its images converted by two worker processes, writes what the fixture wrote."""
    root = tmp_path / 'REDS'
    for split in REDS_CLIPS:
        for folder in (f'{split}_sharp', f'{split}_blur_bicubic'):
            shutil.copytree(reds / folder, root / folder)
    result = run_command('cnlrn', 'prepare-reds', '--root', root, '--workers', 2)
    assert result.returncode == 0, result.stderr
    assert folder_contents(root) == folder_contents(reds)


def test_reds_training_lmdbs(reds):
    keys = [f'{c}/{i:08d}' for c, n in REDS_CLIPS['train'].items() for i in range(n)]
    for name, source, shape in (
        ('train_sharp', 'train_sharp', HR_SHAPE),
        ('train_blur_bicubic_X4', 'train_blur_bicubic/X4', LR_SHAPE),
        ('train_sharp_bicubic_X4', 'train_sharp_bicubic/X4', LR_SHAPE),
    ):
        folder = reds / f'{name}.lmdb'
        assert sorted(os.listdir(folder)) == ['data.mdb', 'lock.mdb', 'meta_info.txt']
        h, w, c = shape
        assert (folder / 'meta_info.txt').read_text().splitlines() == [f'{k}.png ({h},{w},{c}) 1' for k in keys]
        items = lmdb_images(folder)
        assert sorted(items) == keys
        for key in keys:
            np.testing.assert_array_equal(items[key], read(reds / source / f'{key}.png'))
    assert not [p for p in reds.rglob('*') if p.name.startswith('.incomplete') or p.name.endswith('.tmp')]


def test_reds_sharp_lr_is_bicubic_of_hr(reds):
    for clip, n in REDS_CLIPS['train'].items():
        for i in range(n):
            frame = f'{clip}/{i:08d}.png'
            np.testing.assert_array_equal(
                read(reds / 'train_sharp_bicubic' / 'X4' / frame), bicubic(read(reds / 'train_sharp' / frame))
            )


def test_reds_val300(reds):
    for name in ('sharp', 'blur_bicubic_X4', 'sharp_bicubic_X4'):
        assert sorted(os.listdir(reds / 'val300' / name)) == VAL300_NAMES
    for name in VAL300_NAMES:
        frame = name.replace('_', '/')
        hr = read(reds / 'val_sharp' / frame)
        np.testing.assert_array_equal(read(reds / 'val300' / 'sharp' / name), hr)
        np.testing.assert_array_equal(read(reds / 'val300' / 'sharp_bicubic_X4' / name), bicubic(hr))
        np.testing.assert_array_equal(
            read(reds / 'val300' / 'blur_bicubic_X4' / name), read(reds / 'val_blur_bicubic' / 'X4' / frame)
        )


def test_reds_second_run_changes_nothing(reds, capsys):
    before = snapshot(reds)
    assert main(['prepare-reds', '--root', str(reds), '--workers', '1']) == 0
    assert snapshot(reds) == before
    assert 'already complete' in capsys.readouterr().out


def test_reds_interrupted_run_resumes(reds, tmp_path):
    root = tmp_path / 'REDS'
    shutil.copytree(reds, root)
    # as if killed while resizing, and while writing the sharp LR LMDB
    missing_png = root / 'train_sharp_bicubic' / 'X4' / '001' / '00000002.png'
    missing_png.unlink()
    shutil.rmtree(root / 'train_sharp_bicubic_X4.lmdb')
    half = root / '.incomplete-train_sharp_bicubic_X4.lmdb'
    half.mkdir()
    (half / 'data.mdb').write_bytes(b'half written')
    untouched = snapshot(root / 'train_sharp.lmdb')

    assert main(['prepare-reds', '--root', str(root), '--workers', '1']) == 0
    np.testing.assert_array_equal(read(missing_png), bicubic(read(root / 'train_sharp' / '001' / '00000002.png')))
    assert not half.exists()
    items = lmdb_images(root / 'train_sharp_bicubic_X4.lmdb')
    assert len(items) == sum(REDS_CLIPS['train'].values())
    np.testing.assert_array_equal(items['001/00000002'], read(missing_png))
    assert snapshot(root / 'train_sharp.lmdb') == untouched


def test_reds_sharp_lr_pngs_may_be_deleted_once_in_their_lmdb(reds, tmp_path):
    root = tmp_path / 'REDS'
    shutil.copytree(reds, root)
    shutil.rmtree(root / 'train_sharp_bicubic')
    assert main(['prepare-reds', '--root', str(root), '--workers', '1']) == 0
    assert not (root / 'train_sharp_bicubic').exists()


def test_reds_missing_folder(tmp_path, capsys):
    (tmp_path / 'train_blur_bicubic').mkdir()
    assert main(['prepare-reds', '--root', str(tmp_path)]) == 2
    assert_one_line_error(capsys.readouterr().err, 'folder not found', tmp_path / 'train_sharp')


def test_reds_unpaired_frame(reds, tmp_path, capsys):
    root = tmp_path / 'REDS'
    for folder in ('train_sharp', 'train_blur_bicubic', 'val_sharp', 'val_blur_bicubic'):
        shutil.copytree(reds / folder, root / folder)
    (root / 'train_blur_bicubic' / 'X4' / '001' / '00000001.png').unlink()
    assert main(['prepare-reds', '--root', str(root)]) == 2
    err = capsys.readouterr().err
    assert '001/00000001.png' in err and str(root / 'train_sharp') in err
    assert sorted(os.listdir(root)) == ['train_blur_bicubic', 'train_sharp', 'val_blur_bicubic', 'val_sharp']


def make_dvd(root, rng, short_clip):
    for clip in DVD_CLIPS:
        for i in range(10 if clip == short_clip else 12):
            for sub in ('GT', 'input'):
                img = rng.integers(0, 256, DVD_SHAPE, np.uint8)
                write_image(root / 'quantitative_datasets' / clip / sub / f'{i:05d}.jpg', img)


def test_dvd100(tmp_path):
    root = tmp_path / 'DVD'
    make_dvd(root, np.random.default_rng(1), short_clip='IMG_0049')
    assert main(['prepare-dvd', '--root', str(root), '--workers', '1']) == 0

    # of 12 frames, i * 11 // 9 for i = 0..9; of 10, all
    picked = {clip: range(10) if clip == 'IMG_0049' else (0, 1, 2, 3, 4, 6, 7, 8, 9, 11) for clip in DVD_CLIPS}
    names = sorted(f'{clip}_{i:05d}.png' for clip, frames in picked.items() for i in frames)
    for sub in ('sharp', 'blur_bicubic_X4'):
        assert sorted(os.listdir(root / 'DVD100' / sub)) == names
    for name in names:
        clip, frame = name[: -len('_00000.png')], name[-len('00000.png') : -len('.png')]
        source = root / 'quantitative_datasets' / clip
        sharp = read(root / 'DVD100' / 'sharp' / name)
        np.testing.assert_array_equal(sharp, read(source / 'GT' / f'{frame}.jpg')[:16, :24])
        blurry = read(root / 'DVD100' / 'blur_bicubic_X4' / name)
        np.testing.assert_array_equal(blurry, bicubic(read(source / 'input' / f'{frame}.jpg')[:16, :24]))
        assert blurry.shape == (4, 6, 3)

    before = snapshot(root)
    assert main(['prepare-dvd', '--root', str(root)]) == 0
    assert snapshot(root) == before


@pytest.mark.parametrize(
    'damage, fragments',
    [
        ('no input', ['folder not found', os.path.join('IMG_0030', 'input')]),
        ('few frames', ['IMG_0030', '9 frames']),
    ],
)
def test_dvd_bad_input(tmp_path, capsys, damage, fragments):
    root = tmp_path / 'DVD'
    make_dvd(root, np.random.default_rng(2), short_clip=None)
    clip = root / 'quantitative_datasets' / 'IMG_0030'
    if damage == 'no input':
        shutil.rmtree(clip / 'input')
    else:
        for sub in ('GT', 'input'):
            for i in range(3):
                (clip / sub / f'{i:05d}.jpg').unlink()
    assert main(['prepare-dvd', '--root', str(root)]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err
    assert not (root / 'DVD100').exists()
