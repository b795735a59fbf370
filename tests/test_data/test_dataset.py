"""PairedBlurSRDataset on tiny REDS-shaped data, in LMDB and on disk."""

import os
import random
import shutil

import cv2
import lmdb
import numpy as np
import pytest
import torch
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from cnlrn_arch.data.paired_blur_sr_dataset import PairedBlurSRDataset
from cnlrn_base.errors import UserError
from tests.helpers import write_image

SCALE = 4
HR_SHAPE = (32, 48, 3)
CLIPS, FRAMES = ('000', '001'), ('00000000', '00000001', '00000002')
KEYS = [f'{c}/{f}' for c in CLIPS for f in FRAMES]


def box_down(hr):
    """Mean of each 4x4 block: commutes with aligned crops, flips and transposes."""
    h, w, c = hr.shape
    return hr.reshape(h // SCALE, SCALE, w // SCALE, SCALE, c).mean(axis=(1, 3))


def make_lmdb(folder, lmdb_path, keys):
    make_lmdb_from_imgs(str(folder), str(lmdb_path), [f'{k}.png' for k in keys], keys, map_size=2**24)


@pytest.fixture(scope='module')
def reds(tmp_path_factory):
    """HR random; sharp LR = box mean of HR; blurry LR = 255 - sharp LR. Folders and LMDBs."""
    root = tmp_path_factory.mktemp('reds')
    rng = np.random.default_rng(0)
    for key in KEYS:
        hr = rng.integers(0, 256, HR_SHAPE, dtype=np.uint8)
        sharp_lr = np.round(box_down(hr.astype(np.float64))).astype(np.uint8)
        for folder, img in (('hr', hr), ('gt_lr', sharp_lr), ('lq', 255 - sharp_lr)):
            write_image(root / folder / f'{key}.png', img)
            write_image(root / f'{folder}_flat' / f'{key.replace("/", "_")}.png', img)
    for folder in ('hr', 'gt_lr', 'lq'):
        make_lmdb(root / folder, root / f'{folder}.lmdb', KEYS)
    return root


def make(root, phase='val', backend='disk', suffix='', gt_lr=True, **extra):
    ext = '.lmdb' if backend == 'lmdb' else suffix
    opt = {
        'dataroot_gt': str(root / f'hr{ext}'),
        'dataroot_lq': str(root / f'lq{ext}'),
        'io_backend': {'type': backend},
        'scale': SCALE,
        'phase': phase,
        'gt_size': 16,
        'use_hflip': True,
        'use_rot': True,
    }
    if gt_lr:
        opt['dataroot_gt_lr'] = str(root / f'gt_lr{ext}')
    opt.update(extra)
    return PairedBlurSRDataset(opt)


def to_u8(tensor):
    """CHW RGB float tensor -> HWC RGB uint8 array (exact for images read from 8-bit files)."""
    return np.round(tensor.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def assert_same_samples(a, b):
    assert a.keys() == b.keys()
    for name in ('lq', 'gt', 'gt_lr'):
        assert torch.equal(a[name], b[name]), name


def test_registered():
    assert DATASET_REGISTRY.get('PairedBlurSRDataset') is PairedBlurSRDataset


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_validation_returns_whole_frames(reds, backend):
    ds = make(reds, backend=backend)
    assert len(ds) == len(KEYS)
    sample = ds[4]
    assert sample['lq'].shape == sample['gt_lr'].shape == (3, 8, 12) and sample['gt'].shape == (3, 32, 48)
    for name in ('lq', 'gt', 'gt_lr'):
        assert sample[name].dtype == torch.float32
        assert sample[name].min() >= 0 and sample[name].max() <= 1
    folder = {'lq': 'lq', 'gt': 'hr', 'gt_lr': 'gt_lr'}
    for name in ('lq', 'gt', 'gt_lr'):
        expected = cv2.imread(str(reds / folder[name] / f'{KEYS[4]}.png'))[..., ::-1]  # RGB
        np.testing.assert_array_equal(to_u8(sample[name]), expected)
    if backend == 'lmdb':
        assert sample['lq_path'] == sample['gt_path'] == KEYS[4]
    else:
        assert sample['lq_path'] == str(reds / 'lq' / f'{KEYS[4]}.png')
        assert sample['gt_path'] == str(reds / 'hr' / f'{KEYS[4]}.png')


def samples(ds, epoch):
    """``ds``'s samples of ``epoch`` at twice as many positions as it has frames, as in an enlarged epoch."""
    ds.set_epoch(epoch)
    return [ds[position] for position in range(2 * len(ds))]


def assert_same_sample_lists(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert_same_samples(x, y)


def differ(a, b):
    return any(not torch.equal(x['gt'], y['gt']) for x, y in zip(a, b))


@pytest.mark.parametrize('phase', ['val', 'train'])
def test_lmdb_and_disk_give_the_same_samples(reds, phase):
    """Training crops and flips derive from the dataset's seed, the epoch and the position alone: the same
    for both backends, whatever was drawn from Python's random module in between."""
    on_disk, in_lmdb = make(reds, phase, seed=7), make(reds, phase, backend='lmdb', seed=7)
    for epoch in (0, 3):
        from_disk = samples(on_disk, epoch)
        random.random()  # a draw elsewhere in the process (BasicSR, the sampler) must not matter
        assert_same_sample_lists(from_disk, samples(in_lmdb, epoch))


def test_augmentation_follows_the_seed_and_epoch(reds):
    """A resumed run replays the crops and flips of an uninterrupted one: seed and epoch decide them, and
    other epochs or seeds draw others."""
    first = samples(make(reds, 'train', seed=7), 2)
    random.seed(12345)  # the global generator, as another process or a resumed run has it, plays no part
    again = make(reds, 'train', seed=7)
    assert_same_sample_lists(samples(again, 2), first)
    assert differ(samples(again, 3), first)
    assert differ(samples(make(reds, 'train', seed=8), 2), first)


def test_flat_and_nested_names_give_the_same_samples(reds):
    nested, flat = make(reds), make(reds, suffix='_flat')
    assert len(flat) == len(nested)
    for index in range(len(KEYS)):
        assert_same_samples(nested[index], flat[index])
    assert flat[0]['gt_path'].endswith('000_00000000.png')


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_training_crops_and_augmentations_are_aligned(reds, backend):
    # seed 0, epoch 0: the 40 positions draw flipped / rotated patches and plain ones
    ds = make(reds, 'train', backend=backend, seed=0)
    plain_crops = 0
    for index in range(40):  # positions of an enlarged epoch: each draws its own crop and flips
        sample = ds[index]
        assert sample['lq'].shape == sample['gt_lr'].shape == (3, 4, 4) and sample['gt'].shape == (3, 16, 16)
        gt = to_u8(sample['gt']).astype(np.float64)
        # the LR patches were cut where the HR patch was, and flipped / rotated the same way
        np.testing.assert_array_equal(to_u8(sample['gt_lr']), np.round(box_down(gt)))
        np.testing.assert_array_equal(to_u8(sample['lq']), 255 - np.round(box_down(gt)))
        hr = cv2.imread(str(reds / 'hr' / f'{KEYS[index % len(ds)]}.png'))[..., ::-1]
        plain_crops += any(
            np.array_equal(gt, hr[top : top + 16, left : left + 16])
            for top in range(0, 17, SCALE)
            for left in range(0, 33, SCALE)
        )
    # some patches were flipped or rotated, some not
    assert 0 < plain_crops < 40


def test_sharp_lr_computed_from_the_hr_crop(reds):
    ds = make(reds, 'train', gt_lr=False, use_hflip=False, use_rot=False)
    for index in range(len(ds)):
        sample = ds[index]
        expected = imresize(sample['gt'], 1 / SCALE).clamp(0, 1)
        assert sample['gt_lr'].shape == (3, 4, 4)
        torch.testing.assert_close(sample['gt_lr'], expected, rtol=0, atol=1e-6)


def test_sharp_lr_computed_for_whole_validation_frames(reds):
    sample = make(reds, gt_lr=False)[0]
    torch.testing.assert_close(sample['gt_lr'], imresize(sample['gt'], 1 / SCALE).clamp(0, 1), rtol=0, atol=1e-6)


def test_mean_std_normalisation(reds):
    plain, normed = make(reds)[0], make(reds, mean=[0.5] * 3, std=[0.5] * 3)[0]
    for name in ('lq', 'gt', 'gt_lr'):
        torch.testing.assert_close(normed[name], plain[name] * 2 - 1)


def test_filename_template_and_meta_info_file(reds, tmp_path):
    for key in KEYS:
        clip, frame = key.split('/')
        write_image(tmp_path / 'lq' / clip / f'{frame}x4.png', cv2.imread(str(reds / 'lq' / f'{key}.png')))
    meta = tmp_path / 'meta.txt'
    meta.write_text('001/00000002.png (32,48,3)\n000/00000001.png (32,48,3)\n')
    ds = PairedBlurSRDataset(
        {
            'dataroot_gt': str(reds / 'hr'),
            'dataroot_lq': str(tmp_path / 'lq'),
            'io_backend': {'type': 'disk'},
            'filename_tmpl': '{}x4',
            'meta_info_file': str(meta),
            'scale': SCALE,
            'phase': 'val',
        }
    )
    assert len(ds) == 2
    sample = ds[0]
    assert sample['lq_path'] == str(tmp_path / 'lq' / '001' / '00000002x4.png')
    assert torch.equal(sample['lq'], make(reds)[KEYS.index('001/00000002')]['lq'])


@pytest.fixture
def copy_of(reds, tmp_path):
    """A writable copy of the data, to damage."""
    root = tmp_path / 'data'
    shutil.copytree(reds, root)
    return root


def assert_names(info, *fragments):
    """The UserError caught in ``info`` names every fragment (key, file, folder, sizes)."""
    for fragment in fragments:
        assert str(fragment) in str(info.value), (fragment, str(info.value))


def test_missing_folder(copy_of):
    shutil.rmtree(copy_of / 'lq')
    with pytest.raises(UserError) as info:
        make(copy_of)
    assert_names(info, copy_of / 'lq')


def test_empty_folder(copy_of):
    shutil.rmtree(copy_of / 'gt_lr')
    (copy_of / 'gt_lr').mkdir()
    with pytest.raises(UserError) as info:
        make(copy_of)
    assert_names(info, 'no images', copy_of / 'gt_lr')


def test_lmdb_without_meta_info(copy_of):
    os.remove(copy_of / 'lq.lmdb' / 'meta_info.txt')
    with pytest.raises(UserError) as info:
        make(copy_of, backend='lmdb')
    assert_names(info, 'meta_info.txt', copy_of / 'lq.lmdb')


def test_key_missing_from_one_lmdb(copy_of):
    shutil.rmtree(copy_of / 'lq.lmdb')
    keys = [k for k in KEYS if k != '001/00000001']
    make_lmdb(copy_of / 'lq', copy_of / 'lq.lmdb', keys)
    with pytest.raises(UserError) as info:
        make(copy_of, backend='lmdb')
    assert_names(info, '001/00000001', copy_of / 'hr.lmdb', copy_of / 'lq.lmdb')
    # and the other way round: a key only the LR LMDB has
    with pytest.raises(UserError) as info:
        make(copy_of, backend='lmdb', dataroot_gt=str(copy_of / 'lq.lmdb'), dataroot_lq=str(copy_of / 'hr.lmdb'))
    assert_names(info, '001/00000001', copy_of / 'hr.lmdb', copy_of / 'lq.lmdb')


def test_key_listed_but_absent_from_lmdb_data(copy_of):
    for folder in ('hr', 'lq', 'gt_lr'):
        with open(copy_of / f'{folder}.lmdb' / 'meta_info.txt', 'a') as f:
            f.write('002/00000000.png (32,48,3) 1\n')
    ds = make(copy_of, backend='lmdb')
    with pytest.raises(UserError) as info:
        ds[len(ds) - 1]
    assert_names(info, '002/00000000', copy_of / 'hr.lmdb')


@pytest.mark.parametrize('folder', ['lq', 'hr'])
def test_file_missing_from_one_folder(copy_of, folder):
    os.remove(copy_of / folder / '000' / '00000002.png')
    with pytest.raises(UserError) as info:
        make(copy_of)
    assert_names(info, '000/00000002', copy_of / 'hr', copy_of / 'lq')


def test_meta_info_file_lists_absent_image(copy_of):
    meta = copy_of / 'meta.txt'
    meta.write_text('000/00000001.png\n003/00000000.png\n')
    with pytest.raises(UserError) as info:
        make(copy_of, meta_info_file=str(meta))
    assert_names(info, '003/00000000', meta, copy_of / 'hr')


@pytest.mark.parametrize(
    'folder, shape, expected',
    [
        ('lq', (9, 12, 3), 'HR size (32, 48) is not 4x the LR size (9, 12)'),
        ('gt_lr', (8, 11, 3), 'sharp LR size (8, 11)'),
    ],
)
def test_sizes_not_matching_the_scale(copy_of, folder, shape, expected):
    write_image(copy_of / folder / '001' / '00000000.png', np.zeros(shape, np.uint8))
    ds = make(copy_of)
    ds[0]
    with pytest.raises(UserError) as info:
        ds[KEYS.index('001/00000000')]
    assert_names(info, '001/00000000', expected)


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_undecodable_image(copy_of, backend):
    bad = copy_of / 'gt_lr' / '000' / '00000001.png'
    bad.write_bytes(b'not a png')
    env = lmdb.open(str(copy_of / 'gt_lr.lmdb'))
    with env.begin(write=True) as txn:
        txn.put(b'000/00000001', b'not a png')
    env.close()
    ds = make(copy_of, backend=backend)
    with pytest.raises(UserError) as info:
        ds[1]
    culprit = ['000/00000001', copy_of / 'gt_lr.lmdb'] if backend == 'lmdb' else [bad]
    assert_names(info, 'cannot read image', *culprit)


def test_crop_larger_than_image(reds):
    ds = make(reds, 'train', gt_size=64)
    with pytest.raises(UserError) as info:
        ds[0]
    assert_names(info, KEYS[0], '(8, 12)', '(16, 16)', 'gt_size 64')


@pytest.mark.parametrize(
    'extra, fragment',
    [
        ({'gt_size': 18}, 'gt_size'),
        ({'gt_size': None}, 'gt_size'),
        ({'io_backend': {'type': 'memcached'}}, 'memcached'),
    ],
)
def test_bad_options(reds, extra, fragment):
    with pytest.raises(UserError) as info:
        make(reds, 'train', **extra)
    assert_names(info, fragment)


def test_hidden_files_and_folders_in_image_folders_are_left_out(reds, tmp_path):
    """A .DS_Store file stopped basicsr's scandir with NotADirectoryError; a hidden folder's images are not frames."""
    for folder in ('hr', 'lq', 'gt_lr'):
        shutil.copytree(reds / folder, tmp_path / folder)
        (tmp_path / folder / '.DS_Store').write_bytes(b'\0\0\0\1Bud1')
        write_image(tmp_path / folder / '.thumbnails' / '000' / 'x.png', np.zeros((4, 4, 3), np.uint8))
    dataset = make(tmp_path)
    assert len(dataset) == len(KEYS)
    assert dataset[0]['gt_path'] == str(tmp_path / 'hr' / '000' / '00000000.png')
