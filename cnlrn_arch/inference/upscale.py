"""Run a network on one :class:`~.image_io.UserImage` as its :class:`~.settings.InferenceSettings` say.

The primitives both the image path (:mod:`.restore_files`, the web page) and the
video path (:mod:`.restore_video`) run: one forward pass (:func:`forward`), an
image upscaled band by band (:func:`upscale`), and the same into a file or any
consumer with running out of memory and non-finite outputs reported
(:func:`upscale_into`, :func:`restore_image`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

import cv2
import numpy as np
import torch

from cnlrn_arch.inference.image_io import UserImage, resized, scaled_size, write_image, write_png
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.tiling import tiled_bands, whole_bands
from cnlrn_arch.runtime.self_ensemble import self_ensemble
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import SUGGESTED_TILE

# LR rows of context around a band of alpha rows: bicubic reads 2 on either side
ALPHA_CONTEXT = 2

T = TypeVar('T')


class NonFiniteOutput(UserError):
    """The network's output holds NaN or Inf; the message names the first output row that does."""


def forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, settings: InferenceSettings) -> torch.Tensor:
    """``net`` of the (N, C, H, W) input ``x`` on the settings' device, in their precision, self-ensembled if asked.

    Raises:
        RuntimeError: as the network raises it, running out of memory included (see :func:`is_out_of_memory`).
    """
    network = partial(self_ensemble, net) if settings.self_ensemble else net
    with torch.inference_mode(), settings.autocast():
        return network(x)


def upscale(
    net: Callable[[torch.Tensor], torch.Tensor], image: UserImage, settings: InferenceSettings
) -> Iterator[np.ndarray]:
    """``image`` with its colours run through ``net`` and its alpha, if any, resized to match by bicubic.

    The result comes as bands of rows from the top, for :func:`~.image_io.write_png`
    to encode as they come: with tiles, memory does not grow with the image's height.

    Args:
        net (Callable[[torch.Tensor], torch.Tensor]): an image-to-image upscaler on the settings'
            device, e.g. the module of :func:`~.network.load_network`'s network.
        image (UserImage): the input.
        settings (InferenceSettings): the device, tiles (see :mod:`.tiling`), self-ensemble
            and precision; channels-last and compilation are the network's own.

    Yields:
        np.ndarray: the next output rows in the input's mode and sample type: h x W
        (gray) or h x W x 2, 3, 4 (gray+alpha, RGB, RGBA).

    Raises:
        NonFiniteOutput: where an output row holds NaN or Inf, before that band is yielded.
    """

    def read(rows, cols):
        return torch.from_numpy(image.rgb(rows, cols)).permute(2, 0, 1)[None].to(settings.device)

    run = partial(forward, net, settings=settings)
    height, width = image.pixels.shape[:2]
    if settings.tile:
        bands = tiled_bands(run, read, height, width, settings.tile, settings.tile_pad)
    else:
        bands = whole_bands(run, read, height, width)
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


def restore_image(
    net: Callable[[torch.Tensor], torch.Tensor],
    image: UserImage,
    path: str,
    out_path: str | os.PathLike,
    settings: InferenceSettings,
    outscale: float | None = None,
    kind: str = 'png',
) -> None:
    """Write ``image`` (read from ``path``) upscaled to the image ``out_path``, as ``cnlrn infer`` does.

    A PNG at the network's scale streams band by band (see :func:`~.image_io.write_png`); another
    scale or type is written whole (see :func:`~.image_io.write_image`). Running out of memory, and
    a non-finite output, become a :class:`UserError` naming ``path`` (suggesting tiles, or float32);
    nothing is then written.

    Args:
        net, image, settings: as :func:`upscale` takes them.
        path (str): where ``image`` came from, for messages.
        out_path (str | os.PathLike): the output file.
        outscale (float | None): the output's size over the input's (see :func:`outscaled`); None: the network's.
        kind (str): the output's type, 'png', 'jpg' or 'webp'.
    """
    if outscale is None and kind == 'png':
        upscale_into(partial(write_png, out_path), net, image, path, settings)
        return
    restored = upscale_into(lambda bands: np.concatenate(list(bands)), net, image, path, settings)
    height, width = image.pixels.shape[:2]
    write_image(out_path, outscaled(restored, width, height, outscale), kind)


def outscaled(restored: np.ndarray, width: int, height: int, outscale: float | None) -> np.ndarray:
    """``restored``, the output for a ``width`` x ``height`` input, resized to int(width x ``outscale``) x
    int(height x ``outscale``) (at least 1) by Lanczos, as Real-ESRGAN's --outscale; None: unchanged."""
    if outscale is None:
        return restored
    return resized(restored, *scaled_size(width, height, outscale))


def is_out_of_memory(err: RuntimeError) -> bool:
    """Whether ``err`` says that the GPU's or the CPU allocator's memory ran out."""
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)


def release_cached_memory(device: torch.device) -> None:
    """Hand the blocks the CUDA allocator keeps back to the GPU after running out of memory (nothing on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def upscale_into(
    sink: Callable[[Iterator[np.ndarray]], T],
    net: Callable[[torch.Tensor], torch.Tensor],
    image: UserImage,
    path: str,
    settings: InferenceSettings,
) -> T:
    """``sink`` of the output bands of ``image`` (read from ``path``) upscaled, as ``cnlrn infer`` makes them.

    Args:
        sink (Callable[[Iterator[np.ndarray]], T]): consumes the bands (see :func:`upscale`).
        net, image, settings: as :func:`upscale` takes them.
        path (str): where ``image`` came from, for messages.

    Returns:
        T: what ``sink`` returned.

    Raises:
        UserError: naming ``path`` for running out of memory (suggesting tiles) or a non-finite
            output (suggesting float32).
    """
    try:
        return sink(upscale(net, image, settings))
    except NonFiniteOutput as err:
        precision = settings.precision
        hint = f' (computed in {precision}: retry without --{precision})' if precision else ''
        raise UserError(f'{path}: {err}{hint}') from None
    except RuntimeError as err:
        if not is_out_of_memory(err):
            raise
    # outside the except block: the traceback's frames, which hold the tensors, are released by now
    release_cached_memory(settings.device)
    height, width = image.pixels.shape[:2]
    tile = settings.tile
    advice = f'a smaller --tile than {tile}' if tile else f'--tile {SUGGESTED_TILE}'
    raise UserError(f'{path}: out of memory on {width}x{height} pixels; retry with {advice}')
