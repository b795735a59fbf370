"""Run a network on one :class:`~.image_io.UserImage`, with self-ensemble, tiling and autocast as asked."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import cv2
import torch
from torch import nn

from ..utils.self_ensemble import self_ensemble
from ..utils.speed import autocast
from .image_io import UserImage
from .tiling import output_scale, tiled_forward


def upscale(
    net: nn.Module,
    image: UserImage,
    device: torch.device,
    tile: int | None = None,
    tile_pad: int = 0,
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> UserImage:
    """``image`` with its RGB run through ``net`` and its alpha, if any, resized to match by bicubic.

    Args:
        net (nn.Module): an image-to-image upscaler on ``device``, e.g. from
            :func:`~.network.load_network`.
        image (UserImage): the input.
        device (torch.device): where ``net`` runs.
        tile (int | None): run ``tile`` x ``tile`` LR tiles (see :mod:`.tiling`);
            None runs the whole image at once.
        tile_pad (int): pixels of context around each tile.
        ensemble (bool): average over the x8 flips/rotations (8 times slower).
        amp_dtype (torch.dtype | None): torch.bfloat16 or torch.float16 to
            autocast on ``device``; None for float32.

    Returns:
        UserImage: the upscaled image, in the input's mode.
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
