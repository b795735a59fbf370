"""Run a network on one :class:`~.image_io.UserImage`, with self-ensemble, tiling and autocast as asked."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import cv2
import numpy as np
import torch
from torch import nn

from cnlrn_arch.inference.image_io import UserImage, write_png
from cnlrn_arch.inference.tiling import tiled_bands, whole_bands
from cnlrn_arch.runtime.self_ensemble import self_ensemble
from cnlrn_arch.runtime.speed import AMP_DTYPES, autocast
from cnlrn_base.errors import UserError

# LR rows of context around a band of alpha rows: bicubic reads 2 on either side
ALPHA_CONTEXT = 2

SUGGESTED_TILE = 256


class NonFiniteOutput(UserError):
    """The network's output holds NaN or Inf; the message names the first output row that does."""


def upscale(
    net: nn.Module,
    image: UserImage,
    device: torch.device,
    tile: int | None = None,
    tile_pad: int = 0,
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> Iterator[np.ndarray]:
    """``image`` with its colours run through ``net`` and its alpha, if any, resized to match by bicubic.

    The result comes as bands of rows from the top, for :func:`~.image_io.write_png`
    to encode as they come: with ``tile``, memory does not grow with the image's height.

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

    Yields:
        np.ndarray: the next output rows in the input's mode and sample type: h x W
        (gray) or h x W x 2, 3, 4 (gray+alpha, RGB, RGBA).

    Raises:
        NonFiniteOutput: where an output row holds NaN or Inf, before that band is yielded.
    """
    network = partial(self_ensemble, net) if ensemble else net

    def forward(x):
        with torch.inference_mode(), autocast(device, amp_dtype):
            return network(x)

    def read(rows, cols):
        return torch.from_numpy(image.rgb(rows, cols)).permute(2, 0, 1)[None].to(device)

    height, width = image.pixels.shape[:2]
    if tile:
        bands = tiled_bands(forward, read, height, width, tile, tile_pad)
    else:
        bands = whole_bands(forward, read, height, width)
    top = 0
    for band in bands:
        finite_rows = torch.isfinite(band).all(dim=-1).all(dim=1)[0]
        if not finite_rows.all():
            first = top + int(finite_rows.logical_not().nonzero()[0])
            raise NonFiniteOutput(f'the output holds NaN or Inf (first in row {first}); nothing written')
        rgb = band[0].clamp(0, 1).permute(1, 2, 0).numpy()
        # the three outputs of a replicated gray input are close but not equal; their mean is the gray value
        samples = image.samples(rgb.mean(axis=2) if image.gray else rgb)
        if image.has_alpha:
            samples = np.dstack([samples, image.samples(_alpha_rows(image, top, top + len(rgb), band.shape[-1]))])
        yield samples
        top += len(rgb)


def _alpha_rows(image: UserImage, top: int, bottom: int, out_width: int) -> np.ndarray:
    """Output rows ``top``..``bottom`` of the alpha channel resized by bicubic, as the whole resize would give them."""
    height, width = image.pixels.shape[:2]
    scale = out_width // width
    # a slice of whole LR rows maps onto whole output rows with the same bicubic weights (bit for bit where the
    # scale is a power of two, as CNLRN's 4: the sample positions are then exact in floating point)
    start = max(top // scale - ALPHA_CONTEXT, 0)
    stop = min(-(-bottom // scale) + ALPHA_CONTEXT, height)
    # the network knows nothing of transparency; quantizing clips bicubic's overshoot to [0, 1]
    alpha = cv2.resize(
        image.alpha(slice(start, stop)), (out_width, (stop - start) * scale), interpolation=cv2.INTER_CUBIC
    )
    return alpha[top - start * scale : bottom - start * scale]


def restore_image(net, image, path, out_path, device, tile=None, tile_pad=0, self_ensemble=False, precision=None):
    """Write ``image`` (read from ``path``) upscaled to the PNG ``out_path``, as ``cnlrn infer`` does.

    Running out of memory, and a non-finite output, become a :class:`UserError` naming ``path``
    (suggesting tiles, or float32); nothing is then written.
    """
    upscale_into(partial(write_png, out_path), net, image, path, device, tile, tile_pad, self_ensemble, precision)


def is_out_of_memory(err: RuntimeError) -> bool:
    """Whether ``err`` says that the GPU's or the CPU allocator's memory ran out."""
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)


def upscale_into(sink, net, image, path, device, tile=None, tile_pad=0, self_ensemble=False, precision=None):
    """``sink`` of the output bands of ``image`` (read from ``path``) upscaled, as ``cnlrn infer`` makes them.

    Args:
        sink (Callable[[Iterator[np.ndarray]], T]): consumes the bands (see :func:`~.upscale.upscale`).
        net, image, device, tile, tile_pad, self_ensemble: as :func:`~.upscale.upscale` takes them.
        path (str): where ``image`` came from, for messages.
        precision (str | None): None (float32) or a key of AMP_DTYPES to autocast to.

    Returns:
        T: what ``sink`` returned.

    Raises:
        UserError: naming ``path`` for running out of memory (suggesting tiles) or a non-finite
            output (suggesting float32).
    """
    try:
        return sink(upscale(net, image, device, tile, tile_pad, self_ensemble, AMP_DTYPES.get(precision)))
    except NonFiniteOutput as err:
        hint = f' (computed in {precision}: retry without --{precision})' if precision else ''
        raise UserError(f'{path}: {err}{hint}') from None
    except RuntimeError as err:
        if not is_out_of_memory(err):
            raise
    # outside the except block: the traceback's frames, which hold the tensors, are released by now
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    height, width = image.pixels.shape[:2]
    advice = f'a smaller --tile than {tile}' if tile else f'--tile {SUGGESTED_TILE}'
    raise UserError(f'{path}: out of memory on {width}x{height} pixels; retry with {advice}')
