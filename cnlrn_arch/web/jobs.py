"""What the ``cnlrn serve`` page runs, without Gradio: one upload restored as ``cnlrn infer`` restores a file.

Each job reads the upload with ``cnlrn infer``'s reader and pixel limit and
writes its result with :func:`~cnlrn_arch.inference.restore_files.restore_image`,
so the page and the command give the same PNG; beside it, the input upscaled
by bicubic for comparison. Everything is written in a temporary folder that
the server removes when it stops.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..data_prep import demo_data
from ..inference.image_io import DEFAULT_MAX_PIXELS, UserImage, read_image, write_png
from ..inference.network import load_network, resolve_device
from ..inference.restore_files import DEFAULT_TILE_PAD, restore_image
from ..project import SCALE
from ..utils.errors import UserError, user_message
from ..utils.speed import AMP_DTYPES, check_autocast

# the autocast dtype of the page's half-precision option by device type: float16 where GPUs compute it fastest
HALF_PRECISION = {'cuda': 'fp16', 'cpu': 'bf16'}
# cnlrn infer's default output suffix, so a downloaded result has the name the command gives it
RESULT_SUFFIX = '_cnlrn'
# the seed of cnlrn make-demo-data's default set, whose held-out LR inputs are the page's examples
DEMO_SEED = 0


@dataclass
class Result:
    """The files of one job.

    Attributes:
        bicubic (str): the input upscaled by bicubic, as large as the result (PNG, the input's mode).
        restored (str): the network's output, the PNG ``cnlrn infer`` writes.
    """

    bicubic: str
    restored: str


class _CountedForwards(nn.Module):
    """``net``, calling ``step()`` after each forward pass: progress in tiles (x8 with the self-ensemble)."""

    def __init__(self, net: nn.Module, step: Callable[[], None]):
        super().__init__()
        self.net = net
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        self.step()
        return y


def half_precision(device: torch.device) -> str | None:
    """The key of AMP_DTYPES that the half-precision option uses on ``device``, or None where autocast lacks it."""
    name = HALF_PRECISION[device.type]
    try:
        check_autocast(device.type, AMP_DTYPES[name], name)
    except UserError:
        return None
    return name


def bicubic(image: UserImage) -> np.ndarray:
    """``image`` upscaled x SCALE by bicubic, in its mode and sample type, colours in RGB order as write_png takes them.

    Args:
        image (UserImage): the input.
    """
    up = cv2.resize(image.pixels, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    if up.ndim == 3 and up.shape[2] >= 3:
        up = up[..., [2, 1, 0, *range(3, up.shape[2])]]  # BGR(A) -> RGB(A)
    return up


class Restorer:
    """The network, loaded once, and what every job shares: the device, the pixel limit, the half precision."""

    def __init__(
        self,
        weights: str | os.PathLike,
        opt: str | None = None,
        device: str = 'auto',
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        """
        Args:
            weights (str | os.PathLike): a bare state dict or a BasicSR checkpoint, as ``cnlrn infer --weights``.
            opt (str | None): option file whose ``network_g`` gives the architecture (default: CNLRN's).
            device (str): 'auto', 'cpu' or 'cuda'.
            max_pixels (int): larger uploads are refused before they are decoded.
        """
        self.device = resolve_device(device)
        self.net = load_network(weights, opt, self.device)
        self.max_pixels = max_pixels
        self.half = half_precision(self.device)

    def restore(
        self,
        upload: str,
        folder: str,
        tile: int | None = None,
        half: bool = False,
        ensemble: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Result:
        """Restore the image file ``upload`` into a new folder under ``folder``, as ``cnlrn infer`` would.

        Args:
            upload (str): the uploaded file.
            folder (str): where the job's folder is made.
            tile (int | None): LR tile side (with cnlrn infer's default padding); None runs the image whole.
            half (bool): autocast to :attr:`half` (float32 where it is None).
            ensemble (bool): average over the 8 flips/rotations.
            progress (Callable[[int, int], None] | None): called with (forward passes done, of how many).

        Raises:
            UserError: naming the upload by its file name only (not where the server keeps it).
        """
        name = os.path.basename(upload)
        job = tempfile.mkdtemp(dir=folder)
        stem = os.path.splitext(name)[0]
        result = Result(os.path.join(job, f'{stem}_bicubic.png'), os.path.join(job, f'{stem}{RESULT_SUFFIX}.png'))
        try:
            image = read_image(upload, self.max_pixels)
            height, width = image.pixels.shape[:2]
            tiles = math.ceil(height / tile) * math.ceil(width / tile) if tile else 1
            total, done = tiles * (8 if ensemble else 1), 0

            def step():
                nonlocal done
                done += 1
                if progress:
                    progress(done, total)

            net = _CountedForwards(self.net, step)
            precision = self.half if half else None
            restore_image(net, image, name, result.restored, self.device, tile, DEFAULT_TILE_PAD, ensemble, precision)
            write_png(result.bicubic, [bicubic(image)])
        except UserError as err:
            raise UserError(user_message(err).replace(upload, name)) from None
        return result


def write_examples(folder: str) -> list[str]:
    """Write the blurry LR test inputs of the demo's held-out photographs to ``folder``; return their paths.

    They are the first validation tile of each photograph, as ``cnlrn make-demo-data``
    writes them under ``val/blur_bicubic_X4`` (made again here, so nothing is downloaded).

    Args:
        folder (str): an existing folder.
    """
    # make-demo-data draws the validation tiles, photograph after photograph, from the second stream of its seed
    rng = np.random.default_rng(np.random.SeedSequence(DEMO_SEED).spawn(2)[1])
    paths = []
    for name in demo_data.VAL_PHOTOS:
        tiles = list(demo_data.val_tiles(demo_data.load_photo(name), rng))
        path = os.path.join(folder, f'{name}.png')
        cv2.imwrite(path, tiles[0][1])
        paths.append(path)
    return paths


@contextmanager
def serving_folder() -> Iterator[str]:
    """A temporary folder for uploads (Gradio's cache, ``GRADIO_TEMP_DIR``) and results; removed on leaving.

    SIGTERM stops the server as Ctrl-C does, so the folder is removed then too.
    Enter it before Gradio is imported: some of its modules read the variable then.
    """
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous_cache = os.environ.get('GRADIO_TEMP_DIR')
    try:
        with tempfile.TemporaryDirectory(prefix='cnlrn-serve-') as folder:
            os.environ['GRADIO_TEMP_DIR'] = os.path.join(folder, 'uploads')
            yield folder
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if previous_cache is None:
            os.environ.pop('GRADIO_TEMP_DIR', None)
        else:
            os.environ['GRADIO_TEMP_DIR'] = previous_cache
