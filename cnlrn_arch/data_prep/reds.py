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

Outputs already complete are skipped, so an interrupted run can be restarted.
"""

import os
from os import path as osp

from ..utils.errors import UserError
from .files import build_lmdb, convert_images, paired_images

TRAIN_HR, TRAIN_LQ = 'train_sharp', osp.join('train_blur_bicubic', 'X4')
TRAIN_SHARP_LR, SHARP_LR_LMDB = osp.join('train_sharp_bicubic', 'X4'), 'train_sharp_bicubic_X4.lmdb'
VAL_HR, VAL_LQ = 'val_sharp', osp.join('val_blur_bicubic', 'X4')
# (source folder, LMDB name) for training
TRAIN_LMDBS = (
    (TRAIN_HR, 'train_sharp.lmdb'),
    (TRAIN_LQ, 'train_blur_bicubic_X4.lmdb'),
    (TRAIN_SHARP_LR, SHARP_LR_LMDB),
)
VAL300 = 'val300'
VAL300_FRAMES = frozenset(f'{i:08d}' for i in range(9, 100, 10))


def clip_frames(hr_dir, lq_dir):
    """The <clip>/<frame>.png paths present in both folders."""
    frames = paired_images(hr_dir, lq_dir)
    for frame in frames:
        if len(frame.split(os.sep)) != 2:
            raise UserError(f'expected <clip>/<frame>.png under {hr_dir}, found {frame}')
    return frames


def prepare_reds(root, workers):
    """Build everything the module docstring lists under ``root``, with ``workers`` processes."""
    train_frames = clip_frames(osp.join(root, TRAIN_HR), osp.join(root, TRAIN_LQ))
    val_frames = clip_frames(osp.join(root, VAL_HR), osp.join(root, VAL_LQ))

    # the sharp LR PNGs only feed their LMDB: once it is complete they may be deleted
    if not osp.exists(osp.join(root, SHARP_LR_LMDB)):
        jobs = [(osp.join(root, TRAIN_HR, f), osp.join(root, TRAIN_SHARP_LR, f), False, True) for f in train_frames]
        convert_images(jobs, workers, 'train sharp LR')
    for folder, name in TRAIN_LMDBS:
        build_lmdb(osp.join(root, folder), osp.join(root, name), train_frames)

    jobs = []
    for frame in val_frames:
        clip, name = frame.split(os.sep)
        if osp.splitext(name)[0] not in VAL300_FRAMES:
            continue
        hr, lq, flat = osp.join(root, VAL_HR, frame), osp.join(root, VAL_LQ, frame), f'{clip}_{name}'
        jobs += [
            (hr, osp.join(root, VAL300, 'sharp', flat), False, False),
            (lq, osp.join(root, VAL300, 'blur_bicubic_X4', flat), False, False),
            (hr, osp.join(root, VAL300, 'sharp_bicubic_X4', flat), False, True),
        ]
    convert_images(jobs, workers, 'Val300')
    print(f'REDS ready under {root}')
