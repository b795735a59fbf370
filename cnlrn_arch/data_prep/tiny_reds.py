"""Tiny REDS-shaped data in seconds, for the tests and ``cnlrn gpu-check``: training LMDBs and validation folders.

Frames are smooth random colour images (more image-like than white noise,
optionally with noise added so that PNGs are as costly to decode as real
frames); the blurry LR frame is a 7x7 box blur of the sharp one, then MATLAB
bicubic x1/4, as REDS' LR frames were made. The same seed gives the same files.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.project import SCALE, TRIPLE_SETS


def smooth_image(rng: np.random.Generator, height: int, width: int, noise: float = 0.0) -> np.ndarray:
    """A smooth random colour image (uint8 BGR), plus Gaussian noise of standard deviation ``noise`` (0-255).

    Args:
        rng (np.random.Generator): the source of randomness.
        height (int): rows.
        width (int): columns.
        noise (float): standard deviation of the added noise in 8-bit levels; 0 adds none.
    """
    coarse = rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 255
    if noise:
        img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def write_frames(
    root: str, clips: int, frames: int, hr_size: tuple[int, int], seed: int, flat: bool, noise: float = 0.0
) -> list[str]:
    """Write sharp, blurry LR and sharp LR PNGs under ``root``/<folder>; return their names relative to a folder.

    Args:
        root (str): the folder that receives one subfolder per entry of TRIPLE_SETS.
        clips (int): clips, each of ``frames`` frames.
        frames (int): frames per clip.
        hr_size (tuple[int, int]): (height, width) of the sharp frames, multiples of 4.
        seed (int): the seed of the images.
        flat (bool): name frames ``<clip>_<frame>.png`` (validation) instead of ``<clip>/<frame>.png``.
        noise (float): see :func:`smooth_image`.
    """
    rng = np.random.default_rng(seed)
    names = []
    for clip in range(clips):
        for frame in range(frames):
            name = f'{clip:03d}_{frame:08d}.png' if flat else f'{clip:03d}/{frame:08d}.png'
            hr = smooth_image(rng, *hr_size, noise=noise)
            images = (hr, bicubic_resize_uint8(cv2.blur(hr, (7, 7)), 1 / SCALE), bicubic_resize_uint8(hr, 1 / SCALE))
            for folder, img in zip(TRIPLE_SETS, images):
                path = os.path.join(root, folder, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if not cv2.imwrite(path, img):
                    raise OSError(f'cannot write {path}')
            names.append(name)
    return names


def make_tiny_reds(
    root: str,
    clips: int = 2,
    frames: int = 3,
    hr_size: tuple[int, int] = (64, 96),
    val_frames: int = 2,
    seed: int = 0,
    noise: float = 0.0,
) -> dict[str, str]:
    """Build ``train_*.lmdb`` and ``val/*`` under ``root``; return their paths by name.

    Args:
        root (str): the folder to fill.
        clips (int): training clips.
        frames (int): frames per training clip.
        hr_size (tuple[int, int]): (height, width) of the sharp frames, multiples of 4.
        val_frames (int): validation frames (one clip).
        seed (int): the seed of the training images; the validation images use ``seed + 1``.
        noise (float): see :func:`smooth_image`.

    Returns:
        dict[str, str]: ``train_<folder>`` (an LMDB) and ``val_<folder>`` (a folder of PNGs) for each of TRIPLE_SETS.
    """
    names = write_frames(os.path.join(root, 'train_png'), clips, frames, hr_size, seed, flat=False, noise=noise)
    paths = {}
    for folder in TRIPLE_SETS:
        lmdb_path = os.path.join(root, f'train_{folder}.lmdb')
        make_lmdb_from_imgs(
            os.path.join(root, 'train_png', folder), lmdb_path, names, [n[: -len('.png')] for n in names]
        )
        paths[f'train_{folder}'] = lmdb_path
    write_frames(os.path.join(root, 'val'), 1, val_frames, hr_size, seed + 1, flat=True, noise=noise)
    for folder in TRIPLE_SETS:
        paths[f'val_{folder}'] = os.path.join(root, 'val', folder)
    return paths
