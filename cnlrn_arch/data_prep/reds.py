"""REDS training LMDBs and the Val300 validation set (``cnlrn prepare-reds``).

Input, the official archives extracted under ROOT:
  train_sharp/<clip>/<frame>.png, train_blur_bicubic/X4/<clip>/<frame>.png,
  val_sharp/<clip>/<frame>.png, val_blur_bicubic/X4/<clip>/<frame>.png.

Output under ROOT:
  train_sharp_bicubic/X4/<clip>/<frame>.png  sharp LR: MATLAB bicubic 1/4 of the HR
  train_sharp.lmdb, train_blur_bicubic_X4.lmdb, train_sharp_bicubic_X4.lmdb
      BasicSR LMDBs of HR, blurry LR and sharp LR, keys <clip>/<frame>
  val300/{sharp,blur_bicubic_X4,sharp_bicubic_X4}/<clip>_<frame>.png
      frames 00000009, 00000019, ..., 00000099 of every validation clip
  <output>.sources.json beside each output: what it was made from

Before anything is written, every frame used is checked: readable, one file
a frame, each HR frame 4x its blurry LR frame in size, all training frames
one size and all Val300 frames one size. Outputs already complete and made
from the sources as they are now are skipped, so an interrupted run can be
restarted; a changed source rebuilds what was made from it. One run at a
time per ROOT.
"""

import os
from os import path as osp

from cnlrn_arch.data_prep.checks import check_same_size, check_scale, paired_images, read_sources
from cnlrn_arch.data_prep.files import build_lmdb, convert_images, lmdb_current, output_size, root_lock
from cnlrn_base.errors import UserError
from cnlrn_base.project import SCALE

TRAIN_HR, TRAIN_LQ = 'train_sharp', osp.join('train_blur_bicubic', 'X4')
TRAIN_SHARP_LR, SHARP_LR_LMDB = osp.join('train_sharp_bicubic', 'X4'), 'train_sharp_bicubic_X4.lmdb'
VAL_HR, VAL_LQ = 'val_sharp', osp.join('val_blur_bicubic', 'X4')
VAL300 = 'val300'
VAL300_FRAMES = frozenset(f'{i:08d}' for i in range(9, 100, 10))
# Val300 folder -> (0: HR or 1: blurry LR, downscaled)
VAL300_SETS = {'sharp': (0, False), 'blur_bicubic_X4': (1, False), 'sharp_bicubic_X4': (0, True)}


def frame_pairs(root, hr, lq, keep=lambda frame: True):
    """<clip>/<frame>.png -> (HR path, blurry LR path) for the frames in both folders that ``keep``."""
    hr_dir, lq_dir = osp.join(root, hr), osp.join(root, lq)
    pairs = {}
    for frame in paired_images(hr_dir, lq_dir):
        if len(frame.split(os.sep)) != 2:
            raise UserError(f'expected <clip>/<frame>.png under {hr_dir}, found {frame}')
        if keep(frame):
            pairs[frame] = osp.join(hr_dir, frame), osp.join(lq_dir, frame)
    return pairs


def check_sizes(pairs, sources, what):
    """Each HR frame 4x its blurry LR frame in size, all HR frames one size."""
    check_scale(list(pairs.values()), sources, SCALE, f'{what} HR frames not {SCALE}x their blurry LR frame in size')
    check_same_size([hr for hr, _ in pairs.values()], sources, f'{what} HR frames')


def prepare_training(root, train, sources, workers):
    """The sharp LR PNGs and the three training LMDBs."""
    lmdbs = {
        'train_sharp.lmdb': {f: (hr, hr, sources[hr].size) for f, (hr, _) in train.items()},
        'train_blur_bicubic_X4.lmdb': {f: (lq, lq, sources[lq].size) for f, (_, lq) in train.items()},
        SHARP_LR_LMDB: {
            f: (osp.join(root, TRAIN_SHARP_LR, f), hr, output_size(sources[hr].size, False, True))
            for f, (hr, _) in train.items()
        },
    }
    for name, images in lmdbs.items():
        lmdb_path = osp.join(root, name)
        images = {osp.splitext(frame)[0]: image for frame, image in images.items()}
        if lmdb_current(lmdb_path, images, sources):
            print(f'{lmdb_path}: already complete')
            continue
        if name == SHARP_LR_LMDB:
            # made only to feed their LMDB: once it is complete they may be deleted
            jobs = {f: (hr, False, True) for f, (hr, _) in train.items()}
            convert_images(osp.join(root, TRAIN_SHARP_LR), jobs, sources, workers, 'train sharp LR')
        build_lmdb(lmdb_path, images, sources, workers, name)


def prepare_reds(root, workers):
    """Build everything the module docstring lists under ``root``, with ``workers`` processes."""
    with root_lock(root):
        train = frame_pairs(root, TRAIN_HR, TRAIN_LQ)
        val300 = frame_pairs(root, VAL_HR, VAL_LQ, lambda f: osp.splitext(osp.basename(f))[0] in VAL300_FRAMES)
        if not val300:
            raise UserError(
                f'no Val300 frames ({min(VAL300_FRAMES)}, ..., {max(VAL300_FRAMES)}) in {osp.join(root, VAL_HR)}'
            )
        sources = read_sources([path for pairs in (train, val300) for pair in pairs.values() for path in pair], workers)
        check_sizes(train, sources, 'training')
        check_sizes(val300, sources, 'Val300')

        prepare_training(root, train, sources, workers)
        for name, (which, downscale) in VAL300_SETS.items():
            jobs = {frame.replace(os.sep, '_'): (pair[which], False, downscale) for frame, pair in val300.items()}
            convert_images(osp.join(root, VAL300, name), jobs, sources, workers, f'Val300 {name}')
    print(f'REDS ready under {root}')
