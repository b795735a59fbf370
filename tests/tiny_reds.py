"""Tiny REDS-shaped data made inside the tests: LMDBs for training, folders for validation."""
import os

import cv2
import numpy as np

import cnlrn_arch  # noqa: F401  before basicsr
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize


def smooth_image(rng, height, width):
    """A smooth random colour image (uint8 BGR), more image-like than white noise."""
    coarse = rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 255, 0, 255).round().astype(np.uint8)


def degrade(hr, scale=4):
    """(blurry LR, sharp LR) of an HR frame: box blur then MATLAB bicubic."""
    blurry = cv2.blur(hr, (7, 7))
    to_lr = lambda img: np.clip(imresize(img.astype(np.float32) / 255., 1 / scale) * 255, 0, 255).round()  # noqa
    return to_lr(blurry).astype(np.uint8), to_lr(hr).astype(np.uint8)


def write_frames(root, clips, frames, hr_size, seed, flat):
    """Write sharp/blur/sharp-LR PNGs; return the relative paths (without root)."""
    rng = np.random.default_rng(seed)
    names = []
    for clip in range(clips):
        for frame in range(frames):
            name = f'{clip:03d}_{frame:08d}.png' if flat else f'{clip:03d}/{frame:08d}.png'
            hr = smooth_image(rng, *hr_size)
            blurry, sharp_lr = degrade(hr)
            for folder, img in (('sharp', hr), ('blur_bicubic_X4', blurry), ('sharp_bicubic_X4', sharp_lr)):
                path = os.path.join(root, folder, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                cv2.imwrite(path, img)
            names.append(name)
    return names


def make_tiny_reds(root, clips=2, frames=3, hr_size=(64, 96), val_frames=2, seed=0):
    """Build ``train_*.lmdb`` and ``val/*`` under ``root``; return a dict of their paths."""
    names = write_frames(os.path.join(root, 'train_png'), clips, frames, hr_size, seed, flat=False)
    paths = {}
    for folder in ('sharp', 'blur_bicubic_X4', 'sharp_bicubic_X4'):
        lmdb_path = os.path.join(root, f'train_{folder}.lmdb')
        make_lmdb_from_imgs(
            os.path.join(root, 'train_png', folder), lmdb_path, names, [n[:-len('.png')] for n in names])
        paths[f'train_{folder}'] = lmdb_path
    write_frames(os.path.join(root, 'val'), 1, val_frames, hr_size, seed + 1, flat=True)
    for folder in ('sharp', 'blur_bicubic_X4', 'sharp_bicubic_X4'):
        paths[f'val_{folder}'] = os.path.join(root, 'val', folder)
    return paths
