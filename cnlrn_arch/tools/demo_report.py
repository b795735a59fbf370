"""What the demo shows: a PSNR/SSIM table, a side-by-side picture, a PSNR curve.

``cnlrn bench-quality`` scores and plots with the same helpers, so both report
numbers measured the same way.
"""
import glob
import os
from os import path as osp

import cv2
import numpy as np

from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from ..utils.image_formats import bicubic_resize_uint8
from .data_prep import SCALE

CROP_BORDER = 4  # as the paper measures
ZOOM = 3  # magnification of the detail crops in the picture


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


def markdown_table(rows):
    """rows: (method, psnr, ssim), the baseline first -> a Markdown table as text."""
    lines = ['| method | PSNR (dB) | SSIM | vs bicubic |', '|---|---|---|---|']
    base = rows[0][1]
    for method, psnr, ssim in rows:
        delta = '' if method == rows[0][0] else f'{psnr - base:+.2f} dB'
        lines.append(f'| {method} | {psnr:.2f} | {ssim:.4f} | {delta} |')
    return '\n'.join(lines)


def _label(img, text):
    out = img.copy()
    cv2.putText(out, text, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _detail(img, box):
    top, left, size = box
    crop = img[top:top + size, left:left + size]
    return cv2.resize(crop, (size * ZOOM, size * ZOOM), interpolation=cv2.INTER_NEAREST)


def _busiest_box(img, size):
    """The size x size window with the most edges: where restoration shows."""
    edges = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F)
    energy = cv2.boxFilter(np.abs(edges), -1, (size, size), normalize=False, anchor=(0, 0))
    valid = energy[:img.shape[0] - size + 1, :img.shape[1] - size + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    return int(top), int(left), size


def comparison_picture(path, panels, sharp, detail_size=48):
    """Rows of [panel ... | sharp HR] per image, each with a zoomed detail below.

    panels: list of (label, list of images); sharp: list of HR images.
    """
    columns = panels + [('sharp HR', sharp)]
    rows = []
    for i, hr in enumerate(sharp):
        box = _busiest_box(hr, detail_size)
        top, left, size = box
        tiles = []
        for label, images in columns:
            full = cv2.rectangle(images[i].copy(), (left, top), (left + size, top + size), (0, 0, 255), 2)
            detail = cv2.resize(_detail(images[i], box), (full.shape[1], full.shape[1]))
            tiles.append(np.vstack([_label(full, label), detail]))
        rows.append(np.hstack([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255) for t in tiles]))
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    cv2.imwrite(path, np.vstack(rows))


def read_scalar_curve(tb_dir, tag):
    """(steps, values) of a TensorBoard scalar, empty when there is none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(tb_dir)
    acc.Reload()
    if tag not in acc.Tags().get('scalars', []):
        return [], []
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def pyplot():
    """matplotlib's pyplot on the Agg backend: pictures are written without a display."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    fig.tight_layout()
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)


def psnr_curve_picture(path, curves, bicubic_psnr):
    """Validation PSNR against iterations, one line per training stage, bicubic dashed."""
    fig, ax = pyplot().subplots(figsize=(6, 4), dpi=120)
    for label, (steps, values) in curves.items():
        if steps:
            ax.plot(steps, values, marker='o', label=label)
    ax.axhline(bicubic_psnr, color='gray', linestyle='--', label=f'bicubic ({bicubic_psnr:.2f} dB)')
    ax.set_xlabel('iteration')
    ax.set_ylabel('validation PSNR (dB)')
    ax.set_title('CNLRN demo: held-out photos')
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
