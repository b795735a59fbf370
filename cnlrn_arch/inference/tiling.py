"""Tiled forward pass: memory bounded by the tile size and the image's width, and no seams.

The LR input is cut into a grid of evenly sized cores of at most ``tile`` x
``tile`` pixels; each runs with up to ``tile_pad`` pixels of its neighbours
around it as context. Neighbouring outputs then overlap (2 * tile_pad LR
pixels, times the scale) and are blended with weights that fall from 1 to 0
across the overlap along a raised cosine: a tile's edge pixels, which saw the
least context, count the least, and one tile fades smoothly into the next.
Sides on the image border keep weight 1, as nothing lies beyond them. Each
output pixel is the weighted sum divided by the sum of the weights.

Tiles run row of tiles by row of tiles; the blend is accumulated in a float
band one row of tiles high and as wide as the output, and the rows that no
later tile reaches leave it as they are finished: no full-size float copy of
the output ever exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from cnlrn_base.errors import UserError

# finished rows leave the blend in bands of at most this many output rows, so conversions after it stay small
BAND_ROWS = 64


def output_scale(x: torch.Tensor, y: object) -> int:
    """The integer factor by which NCHW output ``y`` upscales input ``x``.

    Args:
        x (torch.Tensor): a network's (N, C, H, W) input.
        y (object): its output.

    Raises:
        UserError: unless ``y`` is a tensor (N, C, sH, sW) for an integer s >= 1.
    """
    scale = y.shape[-1] // x.shape[-1] if isinstance(y, torch.Tensor) and y.ndim == 4 else 0
    if scale < 1 or tuple(y.shape) != (*x.shape[:2], x.shape[-2] * scale, x.shape[-1] * scale):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise UserError(
            f'the network maps an input of shape {tuple(x.shape)} to {shape}, '
            'not to an image upscaled by an integer factor'
        )
    return scale


def _spans(length: int, tile: int, pad: int) -> list[tuple[int, int]]:
    """[(start, stop)] of the padded tiles along a side of ``length`` pixels."""
    n = math.ceil(length / tile)
    cuts = [round(i * length / n) for i in range(n + 1)]
    return [(max(cuts[i] - pad, 0), min(cuts[i + 1] + pad, length)) for i in range(n)]


def _overlaps(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(before, after): pixels each tile shares with the previous and the next one."""
    shared = [prev[1] - nxt[0] for prev, nxt in zip(spans, spans[1:])]
    return list(zip([0] + shared, shared + [0]))


def _raised_cosine(n: int) -> torch.Tensor:
    """n weights rising from near 0 to near 1; ramp(n)[k] + ramp(n)[n-1-k] == 1, so two facing ramps sum to 1."""
    return 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n) + 0.5) / n)


def _weights(size: int, before: int, after: int) -> torch.Tensor:
    """1-D blending weights of a tile of ``size`` output pixels that overlaps its neighbours by ``before``/``after``."""
    weights = torch.ones(size)
    if before:
        weights[:before] = _raised_cosine(before)
    if after:
        # on a core narrower than the overlaps both ramps meet; the blend divides by the summed weights anyway
        weights[-after:] = torch.minimum(weights[-after:], _raised_cosine(after).flip(0))
    return weights


def tiled_bands(
    forward: Callable[[torch.Tensor], torch.Tensor],
    read: Callable[[slice, slice], torch.Tensor],
    height: int,
    width: int,
    tile: int,
    tile_pad: int,
) -> Iterator[torch.Tensor]:
    """``forward`` of an image, computed tile by tile and blended (see the module doc), in bands of rows from the top.

    Device memory holds one tile's activations; the CPU holds a float band one
    row of tiles high and as wide as the output. A tile at least as large as
    the image gives exactly ``forward`` of the whole image.

    Args:
        forward (Callable[[torch.Tensor], torch.Tensor]): the network, or a
            function of it such as a self-ensemble.
        read (Callable[[slice, slice], torch.Tensor]): the (N, C, h, w) input
            at the given LR rows and columns, where ``forward`` runs.
        height (int): the LR image's height.
        width (int): the LR image's width.
        tile (int): largest height and width of a tile's core, in LR pixels.
        tile_pad (int): LR pixels of context around each core, where there are any.

    Yields:
        torch.Tensor: (N, C, rows, sW) float32 on the CPU, s the network's scale:
        the next finished output rows, at most ``BAND_ROWS`` of them.
    """
    rows, cols = _spans(height, tile, tile_pad), _spans(width, tile, tile_pad)
    starts = [top for top, _ in rows[1:]] + [height]  # LR rows above the next row of tiles are finished
    out = total = None
    for ((top, bottom), (above, below)), finished in zip(zip(rows, _overlaps(rows)), starts):
        # out and total hold the output rows from top * s on; rows of earlier tiles reaching below are in them
        for (left, right), (before, after) in zip(cols, _overlaps(cols)):
            patch = read(slice(top, bottom), slice(left, right))
            y = forward(patch)
            s = output_scale(patch, y)
            if out is None:
                band = max(stop - start for start, stop in rows) * s
                out = torch.zeros(*y.shape[:2], band, width * s)
                total = torch.zeros(band, width * s)
            weight = torch.outer(
                _weights(y.shape[-2], above * s, below * s), _weights(y.shape[-1], before * s, after * s)
            )
            out[..., : (bottom - top) * s, left * s : right * s] += y.float().cpu() * weight
            total[: (bottom - top) * s, left * s : right * s] += weight
        done = (finished - top) * s
        for start in range(0, done, BAND_ROWS):
            stop = min(start + BAND_ROWS, done)
            yield out[..., start:stop, :] / total[start:stop]
        # the rows the next row of tiles shares move to the top of the band; the rest starts again from zero
        shared = (bottom - finished) * s
        out[..., :shared, :] = out[..., done : done + shared, :].clone()
        total[:shared] = total[done : done + shared].clone()
        out[..., shared:, :] = 0
        total[shared:] = 0


def whole_bands(
    forward: Callable[[torch.Tensor], torch.Tensor],
    read: Callable[[slice, slice], torch.Tensor],
    height: int,
    width: int,
) -> Iterator[torch.Tensor]:
    """``forward`` of the whole image in one call, handed out in bands of rows as :func:`tiled_bands` does.

    Args:
        forward (Callable[[torch.Tensor], torch.Tensor]): the network, or a function of it.
        read (Callable[[slice, slice], torch.Tensor]): the (N, C, h, w) input at the given LR rows and columns.
        height (int): the LR image's height.
        width (int): the LR image's width.

    Yields:
        torch.Tensor: (N, C, rows, sW) float32 on the CPU, at most ``BAND_ROWS`` rows.
    """
    patch = read(slice(0, height), slice(0, width))
    y = forward(patch)
    output_scale(patch, y)
    y = y.float().cpu()
    for start in range(0, y.shape[-2], BAND_ROWS):
        yield y[..., start : start + BAND_ROWS, :]
