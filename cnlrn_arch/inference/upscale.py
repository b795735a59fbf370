"""Run a network on one :class:`~.image_io.UserImage`, with self-ensemble, tiling and autocast as asked."""

from dataclasses import replace
from functools import partial

import cv2
import torch

from ..utils.self_ensemble import self_ensemble
from ..utils.speed import autocast
from .tiling import output_scale, tiled_forward


def upscale(net, image, device, tile=None, tile_pad=0, ensemble=False, amp_dtype=None):
    """``image`` with its RGB run through ``net`` and its alpha, if any, resized to match by bicubic.

    Args:
        tile, tile_pad: run ``tile`` x ``tile`` LR tiles with ``tile_pad`` pixels of
            context (see :mod:`.tiling`); None runs the whole image at once.
        ensemble: average over the x8 flips/rotations (8 times slower).
        amp_dtype: torch.bfloat16 or torch.float16 to autocast on ``device``; None for float32.
    """
    forward = partial(self_ensemble, net) if ensemble else net
    x = torch.from_numpy(image.rgb).permute(2, 0, 1)[None].to(device)
    with torch.inference_mode(), autocast(device, amp_dtype):
        if tile:
            y = tiled_forward(forward, x, tile, tile_pad)  # checks each tile's output itself
        else:
            y = forward(x)
            output_scale(x, y)  # a clear error if an --opt network is no image-to-image upscaler
    rgb = y[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    alpha = image.alpha
    if alpha is not None:
        # the network knows nothing of transparency; writing clips bicubic's overshoot to [0, 1]
        alpha = cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)
    return replace(image, rgb=rgb, alpha=alpha)
