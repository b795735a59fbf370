"""upscale(): tiles cut from the right places in every mode, checked exactly with a network that sees one pixel."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnlrn_arch.inference.image_io import UserImage
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.upscale import upscale
from tests.helpers import noise


class PerPixel(torch.nn.Module):
    """A 1x1 convolution, then nearest x4: each output pixel depends on one input pixel, so tiling changes nothing."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mix = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return F.interpolate(torch.sigmoid(4 * self.mix(x)), scale_factor=4, mode='nearest')


def whole_output(image, **settings):
    return np.concatenate(list(upscale(PerPixel(), image, InferenceSettings(**settings)))).astype(int)


@pytest.mark.parametrize(
    'shape, dtype',
    [((13, 17, 3), np.uint8), ((11, 9, 4), np.uint8), ((10, 14), np.uint16), ((9, 12, 2), np.uint16)],
    ids=['rgb', 'rgba', 'gray16', 'gray_alpha16'],
)
@pytest.mark.parametrize('ensemble', [False, True], ids=['plain', 'self_ensemble'])
def test_tiles_give_the_whole_image_output(shape, dtype, ensemble):
    """Within one level: the blend divides equal outputs by their summed weights, which may round differently."""
    image = UserImage(noise(shape, dtype))
    whole = whole_output(image)
    assert whole.shape == (shape[0] * 4, shape[1] * 4, *shape[2:])
    tiled = whole_output(image, tile=4, tile_pad=2, self_ensemble=ensemble)
    assert np.abs(tiled - whole).max() <= 1


def test_alpha_resized_band_by_band_equals_one_whole_resize():
    """160 output rows leave in three bands; bicubic reads two LR rows beyond each, so the bands must bring them."""
    pixels = noise((40, 9, 4), seed=1)
    alpha = whole_output(UserImage(pixels))[..., 3]
    whole = cv2.resize(pixels[..., 3] / np.float32(255), (36, 160), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(alpha, np.round(np.clip(whole, 0, 1) * 255))
