"""Scoring restored images as the paper does, and reading the demo's validation set and ``basicsr test`` results.

``cnlrn demo`` and both benchmarks score through these helpers, so their
numbers are measured the same way.
"""

import glob
import os
from os import path as osp

import cv2
import numpy as np
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor

from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.project import SCALE

CROP_BORDER = 4  # as the paper measures


def score(restored, sharp):
    """Mean PSNR and SSIM (RGB, 4-pixel border cropped) over lists of uint8 BGR images."""
    psnr = np.mean([calculate_psnr(r, s, CROP_BORDER) for r, s in zip(restored, sharp)])
    ssim = np.mean([calculate_ssim(r, s, CROP_BORDER) for r, s in zip(restored, sharp)])
    return float(psnr), float(ssim)


def read_val(val_dir):
    """Names, sharp HR, blurry LR and bicubic x4 of the blurry LR (uint8 BGR) of a demo data ``val`` folder."""
    names = sorted(osp.splitext(f)[0] for f in os.listdir(osp.join(val_dir, 'sharp')))
    sharp = [cv2.imread(osp.join(val_dir, 'sharp', f'{n}.png')) for n in names]
    blurry = [cv2.imread(osp.join(val_dir, 'blur_bicubic_X4', f'{n}.png')) for n in names]
    return names, sharp, blurry, [bicubic_resize_uint8(img, SCALE) for img in blurry]


def read_results(folder, names):
    """The images ``basicsr test`` saved for each validation name (``<name>_<suffix>.png``)."""
    images = []
    for name in names:
        matches = glob.glob(osp.join(folder, f'{name}_*.png'))
        if len(matches) != 1:
            raise FileNotFoundError(f'expected one result for {name} in {folder}, found {len(matches)}')
        images.append(cv2.imread(matches[0]))
    return images


def val_inputs(blurry):
    """The blurry LR validation images (uint8 BGR) as the networks' 1x3xHxW RGB inputs."""
    return [img2tensor(img.astype(np.float32) / 255.0, bgr2rgb=True, float32=True)[None] for img in blurry]
