"""The demo's pictures: panel labels fit their panels, however narrow."""

import numpy as np
import pytest

from cnlrn_arch.reports import pictures

GRAY = 128
LABELS = ('input frame, bicubic x4', 'restored (demo checkpoint)', 'sharp HR', 'CNLRN (this run)')


def drawn_extent(text, width, height):
    """(rows, columns) the label of a width x height panel covers, drawn on a larger gray canvas so that nothing
    is clipped."""
    canvas = np.full((height + 200, width + 400, 3), GRAY, np.uint8)
    pictures.draw_label(canvas, *pictures.label_layout(text, width, height))
    rows, columns = np.nonzero((canvas != GRAY).any(axis=2))
    return rows.max() + 1, columns.max() + 1


@pytest.mark.parametrize('text', LABELS)
@pytest.mark.parametrize(('width', 'height'), [(128, 96), (96, 72), (64, 48), (256, 256), (512, 384)])
def test_a_label_lies_inside_its_panel(text, width, height):
    rows, columns = drawn_extent(text, width, height)
    assert columns <= width and rows <= height, (text, width, height, rows, columns)


def test_wide_panels_keep_one_line_at_the_full_size():
    assert pictures.label_layout('CNLRN (this run)', 256, 256) == (0.6, ['CNLRN (this run)'])


def test_narrow_panels_wrap_at_spaces_and_keep_every_word():
    scale, lines = pictures.label_layout('restored (demo checkpoint)', 128, 96)
    assert len(lines) > 1 and ' '.join(lines) == 'restored (demo checkpoint)'
    assert scale == pictures.LABEL_SCALES[-1]


def test_a_word_wider_than_the_panel_shrinks():
    scale, lines = pictures.label_layout('checkpoint', 48, 48)
    assert lines == ['checkpoint'] and scale < pictures.LABEL_SCALES[-1]
