"""Figures and Markdown tables of the demo and the benchmarks: one table helper, one way to save a figure."""

import os
from os import path as osp

import cv2
import numpy as np

ZOOM = 3  # magnification of the detail crops in the picture


def markdown_table(columns, rows):
    """A Markdown table as a list of lines: a header of ``columns``, then one line per row of cell strings."""
    return ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)] + [
        '| ' + ' | '.join(row) + ' |' for row in rows
    ]


def _label(img, text):
    """White text on a black box at the top left (a thicker black outline would not line up: OpenCV widens
    each glyph's advance with the stroke thickness)."""
    out = img.copy()
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    cv2.rectangle(out, (0, 0), (width + 12, height + baseline + 12), (0, 0, 0), -1)
    cv2.putText(out, text, (6, height + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _detail(img, box):
    top, left, size = box
    crop = img[top : top + size, left : left + size]
    return cv2.resize(crop, (size * ZOOM, size * ZOOM), interpolation=cv2.INTER_NEAREST)


def _busiest_box(img, size):
    """The size x size window with the most edges: where restoration shows."""
    edges = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F)
    energy = cv2.boxFilter(np.abs(edges), -1, (size, size), normalize=False, anchor=(0, 0))
    valid = energy[: img.shape[0] - size + 1, : img.shape[1] - size + 1]
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
