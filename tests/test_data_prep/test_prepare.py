"""``cnlrn prepare-reds`` and ``cnlrn prepare-dvd`` on tiny fake data sets."""

import os
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from cnlrn_arch.data_prep.checks import read_source
from cnlrn_arch.data_prep.dvd import TEST_CLIPS
from cnlrn_arch.data_prep.files import LOCK_NAME, MANIFEST_SUFFIX, convert_image, root_lock
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
REDS_SOURCES = ['train_blur_bicubic', 'train_sharp', 'val_blur_bicubic', 'val_sharp']
# clip -> number of frames; validation clip 001 is long enough for frames 9 and 19
REDS_CLIPS = {'train': {'000': 2, '001': 3}, 'val': {'000': 12, '001': 21}}
VAL300_NAMES = ['000_00000009.png', '001_00000009.png', '001_00000019.png']
DVD_SHAPE = (18, 27, 3)  # cropped to 16 x 24


def read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def snapshot(root):
    """Every file and folder under ``root`` with its mtime and size, but the lock file (each run writes its PID)."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob('*') if p.name != LOCK_NAME}


def written(root):
    """What a command wrote under ``root``, as :func:`folder_contents` reads it, but the lock file."""
    return {k: v for k, v in folder_contents(root).items() if k != LOCK_NAME}


def assert_error(stderr, *fragments):
    """``stderr`` is one error line naming every fragment, once the progress bars (each drawn from a carriage
    return on) are left out."""
    assert_one_line_error('\n'.join(line for line in stderr.split('\n') if not line.startswith('\r')), *fragments)


def prepare(command, root):
    """Exit status of ``cnlrn <command> --root root --workers 1`` run in this process."""
    return main([command, '--root', str(root), '--workers', '1'])


def copy_reds(reds, tmp_path, outputs=True):
    """A copy of the prepared fake REDS to change; with ``outputs`` false, of its sources alone."""
    root = tmp_path / 'REDS'
    if outputs:
        shutil.copytree(reds, root)
    else:
        for folder in REDS_SOURCES:
            shutil.copytree(reds / folder, root / folder)
    return root


def outputs(root):
    return sorted(set(os.listdir(root)) - {LOCK_NAME, *REDS_SOURCES})


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
    assert prepare('prepare-reds', root) == 0
    return root


@pytest.mark.slow
def test_reds_real_command_with_a_pool_of_workers_writes_the_same(reds, tmp_path):
    """The installed command, its images converted by two worker processes, writes what the fixture wrote."""
    root = copy_reds(reds, tmp_path, outputs=False)
    result = run_command('cnlrn', 'prepare-reds', '--root', root, '--workers', 2, timeout=120)
    assert result.returncode == 0, result.stderr
    assert written(root) == written(reds)


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
    assert prepare('prepare-reds', reds) == 0
    assert snapshot(reds) == before
    assert 'already complete' in capsys.readouterr().out


def test_reds_interrupted_run_resumes(reds, tmp_path):
    root = copy_reds(reds, tmp_path)
    # as if killed while resizing, and while writing the sharp LR LMDB
    missing_png = root / 'train_sharp_bicubic' / 'X4' / '001' / '00000002.png'
    missing_png.unlink()
    shutil.rmtree(root / 'train_sharp_bicubic_X4.lmdb')
    half = root / '.incomplete-train_sharp_bicubic_X4.lmdb'
    half.mkdir()
    (half / 'data.mdb').write_bytes(b'half written')
    untouched = snapshot(root / 'train_sharp.lmdb')

    assert prepare('prepare-reds', root) == 0
    np.testing.assert_array_equal(read(missing_png), bicubic(read(root / 'train_sharp' / '001' / '00000002.png')))
    assert not half.exists()
    items = lmdb_images(root / 'train_sharp_bicubic_X4.lmdb')
    assert len(items) == sum(REDS_CLIPS['train'].values())
    np.testing.assert_array_equal(items['001/00000002'], read(missing_png))
    assert snapshot(root / 'train_sharp.lmdb') == untouched


def test_reds_sharp_lr_pngs_may_be_deleted_once_in_their_lmdb(reds, tmp_path):
    root = copy_reds(reds, tmp_path)
    shutil.rmtree(root / 'train_sharp_bicubic')
    assert prepare('prepare-reds', root) == 0
    assert not (root / 'train_sharp_bicubic').exists()


def truncate(path):
    """Cut the file at ``path`` in half, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def assert_lmdbs_hold_the_sources(root):
    """The training LMDBs and sharp LR PNGs are what the training frames under ``root`` are now."""
    for name, folder in (('train_sharp', 'train_sharp'), ('train_blur_bicubic_X4', 'train_blur_bicubic/X4')):
        items = lmdb_images(root / f'{name}.lmdb')
        assert sorted(items) == sorted(str(p.relative_to(root / folder))[:-4] for p in (root / folder).rglob('*.png'))
        for key, img in items.items():
            np.testing.assert_array_equal(img, read(root / folder / f'{key}.png'), err_msg=f'{name} {key}')
    for key, img in lmdb_images(root / 'train_sharp_bicubic_X4.lmdb').items():
        expected = bicubic(read(root / 'train_sharp' / f'{key}.png'))
        np.testing.assert_array_equal(img, expected, err_msg=key)
        np.testing.assert_array_equal(read(root / 'train_sharp_bicubic' / 'X4' / f'{key}.png'), expected)


def test_reds_changed_source_rebuilds_what_was_made_from_it(reds, tmp_path, capsys):
    """A training frame replaced by one of the wrong size is refused; fixed, it replaces the stale outputs."""
    root = copy_reds(reds, tmp_path)
    frame = root / 'train_sharp' / '001' / '00000001.png'
    rng = np.random.default_rng(3)
    write_image(frame, rng.integers(0, 256, (20, 24, 3), np.uint8))
    before = snapshot(root)
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, frame, '20x24 vs', '4x their blurry LR')
    assert snapshot(root) == before

    write_image(frame, rng.integers(0, 256, HR_SHAPE, np.uint8))  # fixed
    val_frame = root / 'val_blur_bicubic' / 'X4' / '001' / '00000019.png'
    write_image(val_frame, rng.integers(0, 256, LR_SHAPE, np.uint8))
    untouched = root / 'val300' / 'sharp' / '000_00000009.png'
    untouched_stat = untouched.stat().st_mtime_ns
    assert prepare('prepare-reds', root) == 0
    assert_lmdbs_hold_the_sources(root)
    np.testing.assert_array_equal(read(root / 'val300' / 'blur_bicubic_X4' / '001_00000019.png'), read(val_frame))
    assert untouched.stat().st_mtime_ns == untouched_stat


@pytest.mark.parametrize('damage', ['left by an older version', 'data lost', 'meta_info cut'])
def test_reds_stale_or_damaged_lmdb_rebuilt(reds, tmp_path, capsys, damage):
    root = copy_reds(reds, tmp_path)
    lmdb_path = root / 'train_blur_bicubic_X4.lmdb'
    if damage == 'left by an older version':
        # the adversarial trial: built from frames of the wrong size (no checks, no manifest), frames fixed since
        frame = root / 'train_blur_bicubic' / 'X4' / '001' / '00000001.png'
        good = read(frame)
        write_image(frame, np.zeros((5, 6, 3), np.uint8))
        shutil.rmtree(lmdb_path)
        os.remove(f'{lmdb_path}{MANIFEST_SUFFIX}')
        names = sorted(str(p.relative_to(frame.parents[1])) for p in frame.parents[1].rglob('*.png'))
        make_lmdb_from_imgs(str(frame.parents[1]), str(lmdb_path), names, [n[:-4] for n in names], map_size=2**24)
        write_image(frame, good)
    elif damage == 'data lost':
        os.remove(lmdb_path / 'data.mdb')
    else:
        meta = lmdb_path / 'meta_info.txt'
        meta.write_text(''.join(meta.read_text().splitlines(keepends=True)[:-1]))
    assert prepare('prepare-reds', root) == 0
    assert f'{lmdb_path}: already complete' not in capsys.readouterr().out
    assert_lmdbs_hold_the_sources(root)
    h, w, c = LR_SHAPE
    assert all(f'.png ({h},{w},{c}) 1' in line for line in (lmdb_path / 'meta_info.txt').read_text().splitlines())


def test_reds_truncated_output_pngs_rebuilt(reds, tmp_path):
    root = copy_reds(reds, tmp_path)
    val_png = root / 'val300' / 'sharp' / '001_00000019.png'
    sharp_lr_png = root / 'train_sharp_bicubic' / 'X4' / '000' / '00000001.png'
    for png in (val_png, sharp_lr_png):
        truncate(png)
    # the sharp LR PNGs are read again only when their LMDB is rebuilt
    shutil.rmtree(root / 'train_sharp_bicubic_X4.lmdb')
    assert prepare('prepare-reds', root) == 0
    np.testing.assert_array_equal(read(val_png), read(root / 'val_sharp' / '001' / '00000019.png'))
    assert_lmdbs_hold_the_sources(root)


def test_reds_missing_folder(tmp_path, capsys):
    (tmp_path / 'train_blur_bicubic').mkdir()
    assert prepare('prepare-reds', tmp_path) == 2
    assert_error(capsys.readouterr().err, 'folder not found', tmp_path / 'train_sharp')


def test_reds_no_val300_frames(reds, tmp_path, capsys):
    root = copy_reds(reds, tmp_path, outputs=False)
    for path in root.glob('val_*/**/*00000009.png'):
        path.unlink()
    for path in root.glob('val_*/**/*00000019.png'):
        path.unlink()
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, 'no Val300 frames (00000009, ..., 00000099) in', root / 'val_sharp')
    assert outputs(root) == []


def test_reds_unpaired_frame(reds, tmp_path, capsys):
    root = copy_reds(reds, tmp_path, outputs=False)
    (root / 'train_blur_bicubic' / 'X4' / '001' / '00000001.png').unlink()
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, '001/00000001.png', root / 'train_sharp')
    assert outputs(root) == []


# (folder, frame, shape) written over a source frame -> the error; training has 5 frame pairs, Val300 3
WRONG_SIZES = {
    'LR not a quarter of the HR': (
        [('train_blur_bicubic/X4', '001/00000001.png', (5, 6, 3))],
        'training HR frames not 4x their blurry LR frame in size (1 of 5): '
        '{root}/train_sharp/001/00000001.png 16x24 vs {root}/train_blur_bicubic/X4/001/00000001.png 5x6',
    ),
    'one pair of another size': (
        [('train_sharp', '000/00000001.png', (20, 28, 3)), ('train_blur_bicubic/X4', '000/00000001.png', (5, 7, 3))],
        'training HR frames not of the size of the others, 16x24, (1 of 5): {root}/train_sharp/000/00000001.png 20x28',
    ),
    'Val300 frame': (
        [('val_sharp', '001/00000019.png', (16, 20, 3))],
        'Val300 HR frames not 4x their blurry LR frame in size (1 of 3): '
        '{root}/val_sharp/001/00000019.png 16x20 vs {root}/val_blur_bicubic/X4/001/00000019.png 4x6',
    ),
    'several': (
        [
            ('train_blur_bicubic/X4', f'{frame}.png', (3, 6, 3))
            for frame in ('000/00000000', '001/00000000', '001/00000001')
        ]
        + [('train_sharp', '001/00000002.png', (16, 20, 3))],
        'training HR frames not 4x their blurry LR frame in size (4 of 5): '
        '{root}/train_sharp/000/00000000.png 16x24 vs {root}/train_blur_bicubic/X4/000/00000000.png 3x6; '
        '{root}/train_sharp/001/00000000.png 16x24 vs {root}/train_blur_bicubic/X4/001/00000000.png 3x6; '
        '{root}/train_sharp/001/00000001.png 16x24 vs {root}/train_blur_bicubic/X4/001/00000001.png 3x6 and 1 more',
    ),
}


@pytest.mark.parametrize('changes, message', WRONG_SIZES.values(), ids=WRONG_SIZES)
def test_reds_frames_of_the_wrong_size_refused_before_writing(reds, tmp_path, capsys, changes, message):
    root = copy_reds(reds, tmp_path, outputs=False)
    for folder, frame, shape in changes:
        write_image(root / folder / frame, np.zeros(shape, np.uint8))
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, f'cnlrn prepare-reds: error: {message.format(root=root)}')
    assert outputs(root) == []


def test_reds_unreadable_sources_named_before_writing(reds, tmp_path, capsys):
    """Read by BasicSR's LMDB writer, a truncated frame was an AttributeError traceback naming no file."""
    root = copy_reds(reds, tmp_path, outputs=False)
    truncated = root / 'train_sharp' / '001' / '00000001.png'
    truncate(truncated)
    assert prepare('prepare-reds', root) == 2
    # 5 training and 3 Val300 frame pairs
    assert_error(capsys.readouterr().err, 'unreadable source images (1 of 16)', truncated, 'truncated')
    assert outputs(root) == []

    not_png = root / 'val_blur_bicubic' / 'X4' / '001' / '00000009.png'
    not_png.write_bytes(b'not an image')
    for frame in ('000/00000000.png', '000/00000001.png'):
        truncate(root / 'train_blur_bicubic' / 'X4' / frame)
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, '(4 of 16)', truncated, 'and 1 more')
    assert outputs(root) == []


def test_reds_two_images_of_one_frame_refused(reds, tmp_path, capsys):
    """Both would get the key 000/00000000: one frame would silently replace the other."""
    root = copy_reds(reds, tmp_path, outputs=False)
    png = root / 'train_sharp' / '000' / '00000000.png'
    write_image(png.with_suffix('.jpg'), read(png))
    assert prepare('prepare-reds', root) == 2
    assert_error(capsys.readouterr().err, 'two images of one frame', png.with_suffix('.jpg'), png)
    assert outputs(root) == []


def make_dvd(root, rng, short_clip):
    for clip in TEST_CLIPS:
        for i in range(10 if clip == short_clip else 12):
            for sub in ('GT', 'input'):
                img = rng.integers(0, 256, DVD_SHAPE, np.uint8)
                write_image(root / 'quantitative_datasets' / clip / sub / f'{i:05d}.jpg', img)


@pytest.fixture
def dvd(tmp_path):
    """A fake extracted DVD quantitative set, not yet prepared."""
    root = tmp_path / 'DVD'
    make_dvd(root, np.random.default_rng(2), short_clip=None)
    return root


@pytest.mark.parametrize('command', ['prepare-reds', 'prepare-dvd'])
def test_second_run_on_one_root_refused(reds, dvd, tmp_path, capsys, command):
    root = copy_reds(reds, tmp_path, outputs=False) if command == 'prepare-reds' else dvd
    before = snapshot(root)
    with root_lock(str(root)):  # another open file: to flock, as another process
        assert prepare(command, root) == 2
    assert_error(capsys.readouterr().err, root, 'another run', f'(process {os.getpid()} on ')
    assert snapshot(root) == before
    assert prepare(command, root) == 0


@pytest.mark.slow
def test_second_process_on_one_root_refused(reds, tmp_path):
    root = copy_reds(reds, tmp_path, outputs=False)
    with root_lock(str(root)):
        result = run_command('cnlrn', 'prepare-reds', '--root', root, '--workers', 1, timeout=120)
    assert result.returncode == 2
    assert_error(result.stderr, f'(process {os.getpid()} on ')
    assert outputs(root) == []


def test_dvd100(tmp_path):
    root = tmp_path / 'DVD'
    make_dvd(root, np.random.default_rng(1), short_clip='IMG_0049')
    assert prepare('prepare-dvd', root) == 0

    # of 12 frames, i * 11 // 9 for i = 0..9; of 10, all
    picked = {clip: range(10) if clip == 'IMG_0049' else (0, 1, 2, 3, 4, 6, 7, 8, 9, 11) for clip in TEST_CLIPS}
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
    assert prepare('prepare-dvd', root) == 0
    assert snapshot(root) == before


def test_dvd_outputs_checked_against_their_sources(dvd):
    assert prepare('prepare-dvd', dvd) == 0
    out = dvd / 'DVD100'
    truncate(out / 'sharp' / 'IMG_0003_00004.png')
    changed = dvd / 'quantitative_datasets' / 'IMG_0021' / 'input' / '00011.jpg'
    write_image(changed, np.random.default_rng(4).integers(0, 256, DVD_SHAPE, np.uint8))
    before = snapshot(out)
    assert prepare('prepare-dvd', dvd) == 0
    source = dvd / 'quantitative_datasets'
    np.testing.assert_array_equal(
        read(out / 'sharp' / 'IMG_0003_00004.png'), read(source / 'IMG_0003/GT/00004.jpg')[:16, :24]
    )
    np.testing.assert_array_equal(
        read(out / 'blur_bicubic_X4' / 'IMG_0021_00011.png'), bicubic(read(changed)[:16, :24])
    )
    after = snapshot(out)
    rewritten = {p.relative_to(out) for p in after if p.is_file() and after[p] != before.get(p)}
    assert rewritten == {
        Path('sharp/IMG_0003_00004.png'),
        Path('blur_bicubic_X4/IMG_0021_00011.png'),
        Path(f'blur_bicubic_X4{MANIFEST_SUFFIX}'),
    }


@pytest.mark.parametrize(
    'damage, fragments',
    [
        ('no input', ['folder not found', os.path.join('IMG_0030', 'input')]),
        ('few frames', ['IMG_0030', '9 frames']),
        ('truncated', ['unreadable source images (1 of 200)', 'IMG_0030/GT/00011.jpg', 'truncated']),
        ('png beside jpg', ['two images of one frame', 'IMG_0030/input/00005.jpg', 'IMG_0030/input/00005.png']),
        ('sizes differ', ['GT frames not the size of their blurry input (1 of 100)', 'IMG_0030/GT/00000.jpg 18x27 vs']),
    ],
)
def test_dvd_bad_input(dvd, capsys, damage, fragments):
    clip = dvd / 'quantitative_datasets' / 'IMG_0030'
    if damage == 'no input':
        shutil.rmtree(clip / 'input')
    elif damage == 'few frames':
        for sub in ('GT', 'input'):
            for i in range(3):
                (clip / sub / f'{i:05d}.jpg').unlink()
    elif damage == 'truncated':
        truncate(clip / 'GT' / '00011.jpg')
    elif damage == 'png beside jpg':
        write_image(clip / 'input' / '00005.png', read(clip / 'input' / '00005.jpg'))
    else:
        write_image(clip / 'input' / '00000.jpg', np.zeros((18, 26, 3), np.uint8))
    assert prepare('prepare-dvd', dvd) == 2
    assert_error(capsys.readouterr().err, *fragments)
    assert not (dvd / 'DVD100').exists()


def test_reds_fifo_named_like_a_frame_is_named_not_opened(reds, tmp_path, capsys):
    """Opening a FIFO waits for a writer: "checking sources" hung for good."""
    root = copy_reds(reds, tmp_path, outputs=False)
    fifo = root / 'train_sharp' / '001' / '00000002.png'
    fifo.unlink()
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail('prepare-reds opened the FIFO'))
    signal.alarm(60)
    try:
        assert prepare('prepare-reds', root) == 2
    finally:
        signal.alarm(0)
    assert_error(capsys.readouterr().err, 'unreadable source images (1 of 16)', fifo, 'not a regular file: a FIFO')
    assert outputs(root) == []


def test_reds_symlinked_clip_folders_are_followed(reds, tmp_path):
    """A clip folder linked in was skipped: LMDBs with part of the frames, and "REDS ready"."""
    root = copy_reds(reds, tmp_path, outputs=False)
    for folder in ('train_sharp', 'train_blur_bicubic/X4'):
        clip = root / folder / '001'
        elsewhere = tmp_path / 'elsewhere' / folder
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        clip.rename(elsewhere)
        clip.symlink_to(elsewhere, target_is_directory=True)
    assert prepare('prepare-reds', root) == 0
    keys = [f'000/{i:08d}' for i in range(2)] + [f'001/{i:08d}' for i in range(3)]
    for name, folder in (('train_sharp', 'train_sharp'), ('train_blur_bicubic_X4', 'train_blur_bicubic/X4')):
        items = lmdb_images(root / f'{name}.lmdb')
        assert sorted(items) == keys
        for key, img in items.items():
            np.testing.assert_array_equal(img, read(root / folder / f'{key}.png'), err_msg=f'{name} {key}')


def test_jpeg_source_smaller_than_8_pixels_is_read(tmp_path):
    """Decoding at 1/8 scale asked PIL for a 0-pixel draft: ZeroDivisionError instead of a size."""
    path = tmp_path / 'tiny.jpg'
    cv2.imwrite(str(path), np.full((5, 7, 3), 120, np.uint8))
    source, why = read_source(str(path))
    assert why is None and source.size == (5, 7)


def test_output_png_of_the_wrong_size_is_written_again(tmp_path):
    """Only a PNG that decodes at the expected size counts as done, not any complete PNG."""
    src, dst = tmp_path / 'src.png', tmp_path / 'out' / 'dst.png'
    cv2.imwrite(str(src), np.full((16, 24, 3), 90, np.uint8))
    dst.parent.mkdir()
    cv2.imwrite(str(dst), np.full((3, 5, 3), 90, np.uint8))
    assert convert_image((str(src), str(dst), True, True, (4, 6))) is True
    assert read(dst).shape == (4, 6, 3)
    assert convert_image((str(src), str(dst), True, True, (4, 6))) is False
