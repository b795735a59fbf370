"""What the ``cnlrn serve`` page runs, without Gradio: one upload restored as ``cnlrn infer`` restores a file.

Each job reads an image with ``cnlrn infer``'s reader and pixel limit and
writes its result with :func:`~cnlrn_arch.inference.upscale.restore_image`,
a clip with :func:`~cnlrn_arch.inference.restore_video.restore_video`, so the
page and the command give the same file; beside it, the image (a clip's first
frame) upscaled by bicubic for comparison. Everything is written in a
temporary folder that the server removes when it stops; :class:`ServerFiles`
keeps it bounded while the server runs (age, total size), and each job stops at
a time limit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from cnlrn_arch.data_prep import demo_data
from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.inference.image_io import UserImage, output_type, read_image, scaled_size, write_png
from cnlrn_arch.inference.network import LoadedNetwork, load_network
from cnlrn_arch.inference.restore_video import frame_png, restore_video
from cnlrn_arch.inference.settings import InferenceSettings, autocast_works
from cnlrn_arch.inference.upscale import restore_image
from cnlrn_arch.inference.video_io import frame_rgb, output_extension
from cnlrn_base.errors import UserError, user_message
from cnlrn_base.inference_defaults import (
    DEFAULT_EXT,
    DEFAULT_JOB_MINUTES,
    DEFAULT_KEEP_MINUTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TEMP_MB,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_SUFFIX,
)
from cnlrn_base.input_files import is_image_name, is_video_name
from cnlrn_base.optional import import_optional
from cnlrn_base.video_input import FEATURE, open_video

# the autocast dtype of the page's half-precision option by device type: float16 where GPUs compute it fastest
HALF_PRECISION = {'cuda': 'fp16', 'cpu': 'bf16'}
# the unit of --max-upload-mb and --max-temp-mb, as Gradio reads 'mb'
MB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """What one upload may claim of the server (``cnlrn serve``'s options).

    Attributes:
        max_pixels (int): larger images and clip frames are refused before they are decoded.
        max_frames (int): longer clips are refused.
        max_upload_mb (int): larger uploads are refused before they are stored.
        job_minutes (float): a job running longer is stopped.
        keep_minutes (float): uploads and results are removed this long after their last use.
        max_temp_mb (int): the temporary folder's total size: the oldest files are removed above it, and jobs
            refused while it stays above.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    job_minutes: float = DEFAULT_JOB_MINUTES
    keep_minutes: float = DEFAULT_KEEP_MINUTES
    max_temp_mb: int = DEFAULT_MAX_TEMP_MB


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
        check (Callable[[], None]): called after each forward pass; raises to stop the job.
    """

    folder: str
    stem: str
    settings: InferenceSettings
    progress: Callable[[int, int | None], None] | None
    check: Callable[[], None]

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
            self.check()
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


def bicubic(image: UserImage, scale: float) -> np.ndarray:
    """``image`` upscaled by bicubic to int(its size x ``scale``), in its mode and sample type, colours in RGB order
    as write_png takes them.

    Args:
        image (UserImage): the input.
        scale (float): the factor: the network's, or the page's ``--outscale``.
    """
    height, width = image.pixels.shape[:2]
    up = cv2.resize(image.pixels, scaled_size(width, height, scale), interpolation=cv2.INTER_CUBIC)
    if up.ndim == 3 and up.shape[2] >= 3:
        up = up[..., [2, 1, 0, *range(3, up.shape[2])]]  # BGR(A) -> RGB(A)
    return up


class Restorer:
    """The network, loaded once, and what every job shares: the settings, the limits, the half precision.

    Attributes:
        stopping (threading.Event): once set, running jobs stop after their current forward pass (the server is
            stopping).
    """

    def __init__(
        self,
        weights: str | os.PathLike,
        opt: str | None = None,
        device: str = 'auto',
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_frames: int = DEFAULT_MAX_FRAMES,
        job_seconds: float = DEFAULT_JOB_MINUTES * 60,
        outscale: float | None = None,
        ext: str = DEFAULT_EXT,
    ):
        """
        Args:
            weights (str | os.PathLike): weights as ``cnlrn infer --weights`` takes them.
            opt (str | None): option file whose ``network_g`` gives the architecture (default: read from the weights).
            device (str): 'auto', 'cpu' or 'cuda'.
            max_pixels (int): larger images and clip frames are refused before they are decoded.
            max_frames (int): longer clips are refused before they are decoded.
            job_seconds (float): a job still running this long after it started is stopped.
            outscale (float | None): results' size over the upload's, as ``cnlrn infer --outscale`` (a clip's
                shown frame keeps the network's scale); None: the network's.
            ext (str): the type of restored images, as ``cnlrn infer --ext``.
        """
        self.settings = InferenceSettings.checked(device)
        self.network = load_network(weights, opt, self.settings)
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.job_seconds = job_seconds
        self.outscale, self.ext = outscale, ext
        self.stopping = threading.Event()
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
        """Restore the image or clip ``upload`` into ``folder``, as ``cnlrn infer`` would.

        Args:
            upload (str): the uploaded file, a clip where its extension is a video's.
            folder (str): the job's own folder, existing.
            tile (int | None): LR tile side (with cnlrn infer's default padding); None runs each image whole.
            half (bool): autocast to :attr:`half` (float32 where it is None).
            ensemble (bool): average over the 8 flips/rotations.
            progress (Callable[[int, int | None], None] | None): called after each forward pass with (images
                passed so far, of how many): tiles, times 8 with the self-ensemble, times the frames of a
                clip; how many is None for a clip that does not say its length.

        Raises:
            UserError: naming the upload by its file name only, and no other path on the server: where the file is
                not an image or a clip, cannot be read, is over a limit, or where the job ran past its time limit or
                the server is stopping.
        """
        if tile is not None and tile < 1:
            raise UserError(f'tile side {tile}: must be at least 1 LR pixel (or none: the whole image at once)')
        name = os.path.basename(upload)
        if not (is_image_name(name) or is_video_name(name)):
            raise UserError(f'{name}: not an image or a clip this page restores (the extension says neither)')
        precision = self.half if half else None
        settings = dataclasses.replace(self.settings, tile=tile, self_ensemble=ensemble, precision=precision)
        job = Job(folder, os.path.splitext(name)[0], settings, progress, self._deadline(name))
        try:
            if is_video_name(name):
                return self._restore_clip(upload, name, job)
            return self._restore_image(upload, name, job)
        except UserError as err:
            raise UserError(server_paths_hidden(user_message(err), upload, folder)) from None

    def _deadline(self, name: str) -> Callable[[], None]:
        """What a job on ``name`` checks after each forward pass: the server is not stopping, its time is not up."""
        end = time.monotonic() + self.job_seconds

        def check():
            if self.stopping.is_set():
                raise UserError(f'{name}: stopped, the server is stopping')
            if time.monotonic() > end:
                raise UserError(
                    f'{name}: stopped at the time limit of {self.job_seconds / 60:g} minutes per job; '
                    'a smaller image, a shorter clip or fewer options take less'
                )

        return check

    def _restore_image(self, upload: str, name: str, job: Job) -> Result:
        image = read_image(upload, self.max_pixels)
        kind = output_type(name, self.ext)
        restored = job.path(f'{DEFAULT_SUFFIX}.{kind}')  # named as cnlrn infer names it
        net = job.counted(self.network.module, image, frames=1)
        restore_image(net, image, name, restored, job.settings, self.outscale, kind)
        bicubic_path = job.path('_bicubic.png')
        write_png(bicubic_path, [bicubic(image, self.outscale or self.network.scale)])
        # the download is a second name of the shown picture, so fetching it tells a download from a display
        download = os.path.join(job.folder, 'download', os.path.basename(restored))
        os.mkdir(os.path.dirname(download))
        os.link(restored, download)
        return Result(bicubic_path, restored, download)

    def _restore_clip(self, upload: str, name: str, job: Job) -> Result:
        with open_video(upload, self.max_pixels) as video:
            frames = video.frame_count
            if frames is not None and frames > self.max_frames:
                raise UserError(
                    f'{upload}: {frames} frames, over the limit of {self.max_frames}; cnlrn infer restores any length'
                )
            job.check()
            clip = job.path(DEFAULT_SUFFIX + output_extension(video))
            av = import_optional('av', FEATURE)
            frame = next(item for item in video.contents() if isinstance(item, av.VideoFrame))
            first = UserImage(frame_rgb(frame)[..., ::-1])  # BGR, as read_image gives a file's samples
        network = dataclasses.replace(self.network, module=job.counted(self.network.module, first, frames))
        frames_out = job.path('_frames')
        restore_video(
            network,
            upload,
            clip,
            job.settings,
            frames_out=frames_out,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            outscale=self.outscale,
        )
        bicubic_path = job.path('_bicubic.png')
        write_png(bicubic_path, [bicubic(first, self.network.scale)])
        return Result(bicubic_path, frame_png(frames_out, 0), clip)


def run_job(
    restorer: Restorer,
    files: ServerFiles,
    upload: str,
    tile: int | None = None,
    half: bool = False,
    ensemble: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Result:
    """One job of the page: ``upload`` restored by ``restorer`` in a new job folder of ``files``.

    Args:
        restorer (Restorer): the network and the limits.
        files (ServerFiles): the folder of uploads; refuses uploads outside it, and jobs while it is full.
        upload (str): the uploaded file.
        tile, half, ensemble, progress: as :meth:`Restorer.restore` takes them.

    Raises:
        UserError: in one line naming no path on the server.
    """
    job = files.start(upload)
    result = None
    try:
        result = restorer.restore(upload, job, tile, half, ensemble, progress)
        return result
    finally:
        files.finish(job, None if result is None else result.download)


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


def server_paths_hidden(message: str, upload: str, folder: str) -> str:
    """``message`` with ``upload`` named by its file name, and any other path under ``folder`` by its own.

    Args:
        message (str): a user error's message, which the library writes with whole paths.
        upload (str): the uploaded file.
        folder (str): where the server keeps its files.
    """
    message = message.replace(upload, os.path.basename(upload))
    return re.sub(re.escape(os.path.join(os.path.abspath(folder), '')) + r'(\S*/)?', '', message)


@contextmanager
def serving_folder() -> Iterator[str]:
    """A temporary folder for uploads (Gradio's cache, ``GRADIO_TEMP_DIR``) and results; removed on leaving.

    Enter it before Gradio is imported: some of its modules read the variable then.
    """
    previous_cache = os.environ.get('GRADIO_TEMP_DIR')
    try:
        with tempfile.TemporaryDirectory(prefix='cnlrn-serve-', ignore_cleanup_errors=True) as folder:
            os.environ['GRADIO_TEMP_DIR'] = os.path.join(folder, 'uploads')
            yield folder
    finally:
        if previous_cache is None:
            os.environ.pop('GRADIO_TEMP_DIR', None)
        else:
            os.environ['GRADIO_TEMP_DIR'] = previous_cache


def _last_use(path: str) -> float:
    """The newest modification time of ``path`` and, for a folder, everything in it."""
    newest = os.lstat(path).st_mtime
    for root, folders, files in os.walk(path):
        for name in folders + files:
            newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def _size(path: str) -> int:
    """Bytes of ``path``'s files, all of a folder's."""
    if not os.path.isdir(path) or os.path.islink(path):
        return os.lstat(path).st_size
    return sum(os.lstat(os.path.join(root, name)).st_size for root, _, files in os.walk(path) for name in files)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            os.remove(path)


class ServerFiles:
    """The uploads and job folders in the server's folder of uploads, bounded in age and in total size.

    Gradio stores each upload as ``<uploads>/<hash>/<name>`` and serves what a job returns from there too, so each
    job's folder is made there (its files are not copied again). An entry of that folder is removed
    ``keep_seconds`` after its last use, at once when a job's download has been fetched in full (with the job's
    upload), and, oldest first, while the folder holds more than ``max_bytes``. A running job's folder and upload
    are never removed.
    """

    def __init__(self, uploads: str, keep_seconds: float, max_bytes: int):
        """
        Args:
            uploads (str): Gradio's folder of uploads (``GRADIO_TEMP_DIR``); made here.
            keep_seconds (float): how long an upload or a result is kept after its last use.
            max_bytes (int): the folder's total size above which the oldest entries go and jobs are refused.
        """
        self.uploads = os.path.abspath(uploads)
        os.makedirs(self.uploads, exist_ok=True)
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.kept: set[str] = set()  # entries never removed: the page's examples
        self.running: dict[str, str] = {}  # job folder -> the entry of its upload
        self.downloads: dict[str, tuple[str, str]] = {}  # a finished job's download -> (its folder, its upload)

    def entry(self, path: str) -> str | None:
        """The entry of the folder of uploads that holds ``path``, or None where ``path`` is not in it."""
        relative = os.path.relpath(os.path.realpath(path), os.path.realpath(self.uploads))
        if relative == '.' or relative.startswith(os.pardir):
            return None
        return os.path.join(self.uploads, relative.split(os.sep)[0])

    def sweep(self, now: float | None = None) -> int:
        """Remove the entries unused for ``keep_seconds``, then the oldest while over ``max_bytes``; return the bytes
        left.

        Args:
            now (float | None): the time to age entries by (default: now).
        """
        now = time.time() if now is None else now
        with self.lock:
            busy = self.kept | set(self.running) | set(self.running.values())
            entries = []
            for name in os.listdir(self.uploads):
                path = os.path.join(self.uploads, name)
                with suppress(FileNotFoundError):  # removed meanwhile by Gradio
                    entries.append((_last_use(path), _size(path), path))
            total = sum(size for _, size, _ in entries)
            for used, size, path in sorted(entries):
                if path not in busy and (now - used > self.keep_seconds or total > self.max_bytes):
                    _remove(path)
                    total -= size
            self.downloads = {path: job for path, job in self.downloads.items() if os.path.exists(path)}
            return total

    def start(self, upload: str) -> str:
        """A new job folder for ``upload``, made after a sweep.

        Raises:
            UserError: where ``upload`` is not in the folder of uploads, is gone (removed after its time), or the
                folder stays over its size limit.
        """
        name = os.path.basename(upload)
        entry = self.entry(upload)
        if entry is None:
            raise UserError(f'{name}: not a file uploaded to this page')
        with self.lock:
            self.running[entry] = entry  # counted as running, so this sweep keeps the upload
        try:
            total = self.sweep()
        finally:
            with self.lock:
                del self.running[entry]
        if not os.path.isfile(upload):
            raise UserError(
                f'{name}: removed from the server after its result was downloaded or '
                f'{self.keep_seconds / 60:g} minutes unused; upload it again'
            )
        if total > self.max_bytes:
            raise UserError(
                f"the server's temporary folder is full ({total / MB:.0f} MB of {self.max_bytes / MB:.0f} MB): "
                'try again once the jobs before yours are downloaded'
            )
        with self.lock:
            job = tempfile.mkdtemp(prefix='job-', dir=self.uploads)
            self.running[job] = entry
        return job

    def finish(self, job: str, download: str | None) -> None:
        """Mark the job in folder ``job`` finished; ``download``, its result (None where it failed), once fetched in
        full, removes the job's folder and upload."""
        with self.lock:
            upload = self.running.pop(job)
            if download is None:
                _remove(job)
            else:
                self.downloads[os.path.abspath(download)] = (job, upload)
                os.utime(job)  # its age counts from now

    def downloaded(self, path: str) -> None:
        """Remove the job whose download is ``path``, and its upload, unless another job of that upload runs."""
        with self.lock:
            job, upload = self.downloads.pop(os.path.abspath(path), (None, None))
            if job is None:
                return
            _remove(job)
            if upload not in self.kept and upload not in self.running.values():
                _remove(upload)

    def idle(self) -> bool:
        """Whether no job is running."""
        with self.lock:
            return not self.running
