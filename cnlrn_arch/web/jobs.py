"""What the ``cnlrn serve`` page runs, without Gradio: one upload restored as ``cnlrn infer`` restores a file.

Each job reads an image with ``cnlrn infer``'s reader and pixel limit and
writes its result with :func:`~cnlrn_arch.inference.upscale.restore_image`,
a clip with :func:`~cnlrn_arch.inference.restore_video.restore_video`, so the
page and the command give the same file; beside it, the image (a clip's first
frame) upscaled by bicubic for comparison. Everything is written in a
temporary folder that the server removes when it stops.
"""

from __future__ import annotations

import dataclasses
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

from cnlrn_arch.data_prep import demo_data
from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.inference.image_io import UserImage, read_image, write_png
from cnlrn_arch.inference.inputs import is_video_name
from cnlrn_arch.inference.network import LoadedNetwork, load_network
from cnlrn_arch.inference.restore_video import frame_png, restore_video
from cnlrn_arch.inference.settings import InferenceSettings, autocast_works
from cnlrn_arch.inference.upscale import restore_image
from cnlrn_arch.inference.video_io import FEATURE, frame_rgb, open_video, output_extension
from cnlrn_base.errors import UserError, user_message
from cnlrn_base.inference_defaults import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, DEFAULT_SUFFIX
from cnlrn_base.optional import import_optional

# the autocast dtype of the page's half-precision option by device type: float16 where GPUs compute it fastest
HALF_PRECISION = {'cuda': 'fp16', 'cpu': 'bf16'}


@dataclass
class Result:
    """The files of one job.

    Attributes:
        bicubic (str): the input (a clip's first frame) upscaled by bicubic, as large as ``restored``.
        restored (str): the restored image (a clip's first frame), a PNG in the input's mode.
        download (str): the full result: the PNG ``cnlrn infer`` writes, or the restored clip.
    """

    bicubic: str
    restored: str
    download: str


@dataclass
class Job:
    """One upload's settings and folder.

    Attributes:
        folder (str): the job's own folder.
        stem (str): the upload's name without extension, which the results' names start with.
        settings (InferenceSettings): how the network runs on it.
        progress (Callable[[int, int | None], None] | None): as :meth:`Restorer.restore` takes it.
    """

    folder: str
    stem: str
    settings: InferenceSettings
    progress: Callable[[int, int | None], None] | None

    def path(self, suffix: str) -> str:
        """The path in the job's folder of the upload's stem followed by ``suffix``."""
        return os.path.join(self.folder, self.stem + suffix)

    def counted(self, net: nn.Module, image: UserImage, frames: int | None) -> nn.Module:
        """``net`` reporting each forward pass to :attr:`progress`, of ``frames`` images as large as ``image``."""
        height, width = image.pixels.shape[:2]
        tile = self.settings.tile
        tiles = math.ceil(height / tile) * math.ceil(width / tile) if tile else 1
        total = frames * tiles * (8 if self.settings.self_ensemble else 1) if frames else None
        done = 0

        def step(images):
            nonlocal done
            done += images
            if self.progress:
                self.progress(done, total)

        return _CountedForwards(net, step)


class _CountedForwards(nn.Module):
    """``net``, calling ``step(n)`` after each forward pass of ``n`` images (tiles, or a batch of frames on a GPU)."""

    def __init__(self, net: nn.Module, step: Callable[[int], None]):
        super().__init__()
        self.net = net
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        self.step(len(x))
        return y


def half_precision(network: LoadedNetwork, device: torch.device) -> str | None:
    """The key of AMP_DTYPES that the half-precision option uses for ``network`` on ``device``, or None where it
    cannot autocast to it."""
    name = HALF_PRECISION[device.type]
    return name if name in network.autocast_precisions and autocast_works(device, name) else None


def bicubic(image: UserImage, scale: int) -> np.ndarray:
    """``image`` upscaled x ``scale`` by bicubic, in its mode and sample type, colours in RGB order as write_png
    takes them.

    Args:
        image (UserImage): the input.
        scale (int): the factor, the network's.
    """
    up = cv2.resize(image.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    if up.ndim == 3 and up.shape[2] >= 3:
        up = up[..., [2, 1, 0, *range(3, up.shape[2])]]  # BGR(A) -> RGB(A)
    return up


class Restorer:
    """The network, loaded once, and what every job shares: the settings, the limits, the half precision."""

    def __init__(
        self,
        weights: str | os.PathLike,
        opt: str | None = None,
        device: str = 'auto',
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_frames: int = DEFAULT_MAX_FRAMES,
    ):
        """
        Args:
            weights (str | os.PathLike): weights as ``cnlrn infer --weights`` takes them.
            opt (str | None): option file whose ``network_g`` gives the architecture (default: read from the weights).
            device (str): 'auto', 'cpu' or 'cuda'.
            max_pixels (int): larger images and clip frames are refused before they are decoded.
            max_frames (int): longer clips are refused before they are decoded.
        """
        self.settings = InferenceSettings.checked(device)
        self.network = load_network(weights, opt, self.settings)
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.half = half_precision(self.network, self.settings.device)

    def restore(
        self,
        upload: str,
        folder: str,
        tile: int | None = None,
        half: bool = False,
        ensemble: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Result:
        """Restore the image or clip ``upload`` into a new folder under ``folder``, as ``cnlrn infer`` would.

        Args:
            upload (str): the uploaded file, a clip where its extension is a video's.
            folder (str): where the job's folder is made.
            tile (int | None): LR tile side (with cnlrn infer's default padding); None runs each image whole.
            half (bool): autocast to :attr:`half` (float32 where it is None).
            ensemble (bool): average over the 8 flips/rotations.
            progress (Callable[[int, int | None], None] | None): called after each forward pass with (images
                passed so far, of how many): tiles, times 8 with the self-ensemble, times the frames of a
                clip; how many is None for a clip that does not say its length.

        Raises:
            UserError: naming the upload by its file name only (not where the server keeps it).
        """
        if tile is not None and tile < 1:
            raise UserError(f'tile side {tile}: must be at least 1 LR pixel (or none: the whole image at once)')
        name = os.path.basename(upload)
        precision = self.half if half else None
        settings = dataclasses.replace(self.settings, tile=tile, self_ensemble=ensemble, precision=precision)
        job = Job(tempfile.mkdtemp(dir=folder), os.path.splitext(name)[0], settings, progress)
        try:
            if is_video_name(name):
                return self._restore_clip(upload, name, job)
            return self._restore_image(upload, name, job)
        except UserError as err:
            raise UserError(user_message(err).replace(upload, name)) from None

    def _restore_image(self, upload: str, name: str, job: Job) -> Result:
        image = read_image(upload, self.max_pixels)
        restored = job.path(f'{DEFAULT_SUFFIX}.png')  # named as cnlrn infer names it
        restore_image(job.counted(self.network.module, image, frames=1), image, name, restored, job.settings)
        bicubic_path = job.path('_bicubic.png')
        write_png(bicubic_path, [bicubic(image, self.network.scale)])
        return Result(bicubic_path, restored, restored)

    def _restore_clip(self, upload: str, name: str, job: Job) -> Result:
        with open_video(upload, self.max_pixels) as video:
            frames = video.frame_count
            if frames is not None and frames > self.max_frames:
                raise UserError(
                    f'{upload}: {frames} frames, over the limit of {self.max_frames}; cnlrn infer restores any length'
                )
            clip = job.path(DEFAULT_SUFFIX + output_extension(video))
            av = import_optional('av', FEATURE)
            frame = next(item for item in video.contents() if isinstance(item, av.VideoFrame))
            first = UserImage(frame_rgb(frame)[..., ::-1])  # BGR, as read_image gives a file's samples
        network = dataclasses.replace(self.network, module=job.counted(self.network.module, first, frames))
        frames_out = job.path('_frames')
        restore_video(network, upload, clip, job.settings, frames_out=frames_out, max_pixels=self.max_pixels)
        bicubic_path = job.path('_bicubic.png')
        write_png(bicubic_path, [bicubic(first, self.network.scale)])
        return Result(bicubic_path, frame_png(frames_out, 0), clip)


def write_examples(folder: str) -> list[str]:
    """Write the page's examples to ``folder``; return their paths: the demo's held-out photographs, and a clip.

    The photographs are the blurry LR test inputs that ``cnlrn make-demo-data`` writes
    under ``val/blur_bicubic_X4`` (each photograph's first tile), and the clip is
    :func:`~cnlrn_arch.data_prep.demo_clip.make_demo_clip`'s; both are made here, so
    nothing is downloaded.

    Args:
        folder (str): an existing folder.
    """
    paths = []
    for name, blurry_lr in demo_data.held_out_inputs():
        path = os.path.join(folder, f'{name}.png')
        cv2.imwrite(path, blurry_lr)
        paths.append(path)
    clip = os.path.join(folder, 'demo_clip.mp4')
    make_demo_clip(clip)
    return [*paths, clip]


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
