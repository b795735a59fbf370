"""Tiled inference: the blend against the whole image, seams, weights that overlap many ways, bands."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnlrn_arch.inference import tiling
from cnlrn_arch.inference.tiling import tiled_bands
from tests.helpers import tiny_net


def blend(forward, x, tile, tile_pad):
    """The tiled output of ``forward`` on the NCHW tensor ``x``: its bands joined."""
    bands = tiled_bands(forward, lambda rows, cols: x[..., rows, cols], *x.shape[-2:], tile, tile_pad)
    return torch.cat(list(bands), dim=-2)


def whole_image_blend(forward, x, tile, tile_pad):
    """The blend as computed before bands (release 0.3.0): one full-size float accumulator and weight sum."""
    height, width = x.shape[-2:]
    rows, cols = tiling._spans(height, tile, tile_pad), tiling._spans(width, tile, tile_pad)
    out = total = None
    for (top, bottom), (above, below) in zip(rows, tiling._overlaps(rows)):
        for (left, right), (before, after) in zip(cols, tiling._overlaps(cols)):
            y = forward(x[..., top:bottom, left:right])
            s = y.shape[-1] // (right - left)
            if out is None:
                out = torch.zeros(*y.shape[:2], height * s, width * s)
                total = torch.zeros(height * s, width * s)
            weight = torch.outer(
                tiling._weights(y.shape[-2], above * s, below * s), tiling._weights(y.shape[-1], before * s, after * s)
            )
            out[..., top * s : bottom * s, left * s : right * s] += y * weight
            total[top * s : bottom * s, left * s : right * s] += weight
    return out / total


@pytest.fixture(scope='module')
def lr_image():
    torch.manual_seed(1)
    return torch.rand(1, 3, 32, 48)


@pytest.fixture(scope='module')
def conv_net():
    """A fixed x4 upscaler far cheaper than CNLRN: what the blend does with its outputs is what is tested."""
    torch.manual_seed(2)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 48, 3, padding=1), torch.nn.PixelShuffle(4)).eval()


@pytest.mark.parametrize(
    'size, tile, tile_pad',
    [
        ((32, 48), 16, 8),  # two tiles overlap at each seam
        ((37, 29), 4, 16),  # every tile reaches over several others
        ((150, 23), 7, 3),  # many rows of tiles, several bands each; narrow cores
        ((17, 50), 64, 8),  # one tile
        ((33, 33), 10, 0),  # abutting tiles
    ],
)
def test_bands_equal_the_whole_image_accumulation(conv_net, size, tile, tile_pad):
    """Accumulating band by band adds the same numbers in the same order as one full-size accumulator: equal bits."""
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(blend(conv_net, x, tile, tile_pad), whole_image_blend(conv_net, x, tile, tile_pad))


@pytest.mark.parametrize('tile, tile_pad', [(4, 16), (6, 16), (9, 5)])
def test_weights_overlapping_many_ways_are_divided_out(tile, tile_pad):
    """Cores narrower than twice the pad: three or more ramps overlap and sum to 1.16-1.26, not 1.

    An identity-like network (nearest-neighbour x4) on a constant image must give the constant back.
    """
    x = torch.full((1, 3, 40, 31), 0.37)
    out = blend(lambda t: F.interpolate(t, scale_factor=4, mode='nearest'), x, tile, tile_pad)
    assert out.shape == (1, 3, 160, 124)
    assert (out - 0.37).abs().max() < 1e-6


def test_tiles_agree_with_the_whole_image(lr_image):
    net = tiny_net()
    with torch.inference_mode():
        whole = net(lr_image)
        tiled = blend(net, lr_image, 16, 8)
    assert tiled.shape == whole.shape
    # Not zero: the non-local attention is global, so a tile attends to its 32x32 (or smaller)
    # padded window instead of the whole 32x48 image, and zero padding of the convolutions meets
    # the tile edge instead of neighbouring pixels. Measured over 5 random tiny networks: largest
    # difference 0.006-0.011, mean 0.0006-0.0011, outputs spanning about -0.3..0.4 (std 0.06-0.12);
    # abutting tiles without overlap (tile_pad 0) differ by up to 0.14-0.30.
    difference = (tiled - whole).abs()
    assert difference.max() < 0.02 and difference.mean() < 0.002
    with torch.inference_mode():
        abutting = blend(net, lr_image, 16, 0)
    assert (abutting - whole).abs().max() > 5 * difference.max()


def test_blending_fades_tiles_into_each_other():
    def forward(x):  # each tile comes out as one constant: 1, 2 (top row), 3, 4 (bottom row)
        forward.calls += 1
        return torch.full_like(x, float(forward.calls))

    forward.calls = 0
    out = blend(forward, torch.zeros(1, 1, 40, 40), 20, 8)
    assert forward.calls == 4
    # far from the overlaps each tile counts alone
    assert out[0, 0, 0, 0] == 1 and out[0, 0, 0, -1] == 2 and out[0, 0, -1, 0] == 3 and out[0, 0, -1, -1] == 4
    # a seam would step by 1 across columns and by 2 across rows; spread over the 16-pixel overlap
    # by the raised cosine, the steepest steps are pi/32 per unit of difference
    assert out.diff(dim=-1).abs().max() < 1.01 * np.pi / 32
    assert out.diff(dim=-2).abs().max() < 2.01 * np.pi / 32


def test_one_tile_equals_the_whole_image(lr_image):
    net = tiny_net()
    with torch.inference_mode():
        assert torch.equal(blend(net, lr_image, 64, 8), net(lr_image))


def test_finished_rows_leave_in_bands_from_the_top(conv_net):
    x = torch.rand(1, 3, 45, 7)
    with torch.inference_mode():
        bands = list(tiled_bands(conv_net, lambda rows, cols: x[..., rows, cols], 45, 7, 16, 4))
    # cores of 15 rows, padded to LR rows 0-19, 11-34, 26-45: rows above the next row of tiles are finished
    assert [band.shape[-2] for band in bands] == [11 * 4, 15 * 4, 64, 19 * 4 - 64]
    assert all(band.shape[-1] == 28 for band in bands)
