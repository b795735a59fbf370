"""Figures and Markdown tables of the demo and the benchmarks: one table helper, one way to save a figure."""

import os
from os import path as osp

import cv2
import numpy as np

ZOOM = 3  # magnification of the detail crops in the picture
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
# a label's font scales, the largest first: the smallest that keeps it readable, then wrapped (narrow panels)
LABEL_SCALES = (0.6, 0.5, 0.4)
# a label too large for the panel at the smallest scale, wrapped, shrinks down to this
MIN_LABEL_SCALE = 0.2
LABEL_MARGIN, LABEL_LINE_GAP = 6, 4  # pixels around the text and between its lines


def markdown_table(columns, rows):
    """A Markdown table as a list of lines: a header of ``columns``, then one line per row of cell strings."""
    return ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)] + [
        '| ' + ' | '.join(row) + ' |' for row in rows
    ]


def _text_width(text, scale):
    return cv2.getTextSize(text, LABEL_FONT, scale, 1)[0][0]


def _wrapped(text, scale, room):
    """``text`` in lines at most ``room`` pixels wide, broken at spaces (a word wider than that is a line alone)."""
    lines = []
    for word in text.split():
        if lines and _text_width(f'{lines[-1]} {word}', scale) <= room:
            lines[-1] += f' {word}'
        else:
            lines.append(word)
    return lines


def _label_metrics(scale, lines):
    """(text height, line pitch, box width, box height) in pixels of ``lines`` at font ``scale``."""
    (_, height), baseline = cv2.getTextSize(lines[0], LABEL_FONT, scale, 1)  # the same for any text of a scale
    pitch = height + baseline + LABEL_LINE_GAP
    width = max(_text_width(line, scale) for line in lines)
    return height, pitch, width + 2 * LABEL_MARGIN, len(lines) * pitch - LABEL_LINE_GAP + 2 * LABEL_MARGIN


def label_layout(text, panel_width, panel_height):
    """(font scale, lines) of a panel's label, so that it fits in the panel.

    One line at the largest of LABEL_SCALES that fits; else lines broken at spaces at the smallest, made smaller
    still (down to MIN_LABEL_SCALE) until they fit.
    """

    def fits(scale, lines):
        _, _, box_width, box_height = _label_metrics(scale, lines)
        return box_width < panel_width and box_height < panel_height  # the box's far edges are drawn too

    for scale in LABEL_SCALES:
        if fits(scale, [text]):
            return scale, [text]
    scale = LABEL_SCALES[-1]
    while True:
        lines = _wrapped(text, scale, panel_width - 2 * LABEL_MARGIN - 1)
        if fits(scale, lines) or scale <= MIN_LABEL_SCALE:
            return scale, lines
        scale = round(scale - 0.05, 2)


def draw_label(img, scale, lines):
    """White ``lines`` at font ``scale`` on a black box at the top left of ``img``, in place (a thicker black
    outline would not line up: OpenCV widens each glyph's advance with the stroke thickness)."""
    height, pitch, box_width, box_height = _label_metrics(scale, lines)
    cv2.rectangle(img, (0, 0), (box_width, box_height), (0, 0, 0), -1)
    for i, line in enumerate(lines):
        origin = (LABEL_MARGIN, LABEL_MARGIN + height + i * pitch)
        cv2.putText(img, line, origin, LABEL_FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _label(img, text):
    """A copy of ``img`` with ``text`` at its top left, fitted to its size."""
    out = img.copy()
    draw_label(out, *label_layout(text, *img.shape[1::-1]))
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
