"""Restoring a video file frame by frame into an H.264 video (``cnlrn infer`` on videos, and the web page).

Frames stream through: a few decoded frames, their restored copies and the
frames inside the decoder and encoder are in memory, whatever the video's
length. On a GPU, small whole frames go through the network several at a
time (:func:`frames_per_batch`). Each restored frame is encoded at its input
frame's timestamp; the audio packets are copied unchanged (see :mod:`.video_io`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace

import cv2
import numpy as np
import torch
from tqdm import tqdm

from cnlrn_arch.inference.image_io import UserImage, write_png
from cnlrn_arch.inference.network import LoadedNetwork
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.upscale import forward, is_out_of_memory, outscaled, release_cached_memory, upscale_into
from cnlrn_arch.inference.video_io import VideoWriter, check_crf, frame_rgb, video_output
from cnlrn_base.atomic import atomic_write
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import DEFAULT_CRF, DEFAULT_MAX_PIXELS
from cnlrn_base.optional import import_optional
from cnlrn_base.video_input import FEATURE, open_video

# whole frames share a network call on a GPU up to this many LR pixels in all (a 640x360 frame fills a GPU
# alone) and this many frames; on the CPU one frame already keeps every core busy
BATCH_PIXELS = 640 * 360
MAX_BATCH_FRAMES = 8


def frames_per_batch(device: torch.device, height: int, width: int, tile: int | None) -> int:
    """How many ``height`` x ``width`` frames go through the network at once: several small whole ones on a GPU."""
    if device.type != 'cuda' or tile:
        return 1
    return max(1, min(MAX_BATCH_FRAMES, BATCH_PIXELS // (height * width)))


def frame_png(frames_out: str | os.PathLike, index: int) -> str:
    """The PNG of restored frame ``index`` (from 0, in presentation order) under ``frames_out``."""
    return os.path.join(frames_out, f'{index:08d}.png')


FRAMES_STAMP = '.restored_with.json'  # in a --frames-out folder: what its frames were restored from and with
# the stamp's entry claiming frames 0 to this count - 1 as this project's: written before those frames are
CLAIMED_KEY = 'frames'
_FRAME_NAME = re.compile(r'\d{8}\.png')


def frames_stamp(network: LoadedNetwork, path: str | os.PathLike, settings: InferenceSettings) -> dict:
    """What decides the restored frames: the input file, the network (weights and options) and the settings."""
    stat = os.stat(path)
    return {
        'input': os.path.abspath(path),
        'input_bytes': stat.st_size,
        'input_mtime_ns': stat.st_mtime_ns,
        'network_sha256': network.fingerprint,
        **settings.stamp(),
    }


class FramesFolder:
    """A ``--frames-out`` folder: frame PNGs, and a stamp saying what made them and which are this project's.

    Only the frames the stamp claims (:data:`CLAIMED_KEY`) are ever read, replaced
    or deleted; a frame is claimed before it is written, so an interrupted run
    leaves none that is not. Any other file is the user's.

    Args:
        path (str | os.PathLike): the folder, created if missing.
        stamp (dict): what the frames about to be restored are made from (:func:`frames_stamp`).

    Raises:
        UserError: for a folder that cannot be created, or that holds a frame PNG the stamp does
            not claim (the user's own frames, or any left there before the first run).
    """

    def __init__(self, path: str | os.PathLike, stamp: dict):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise UserError(f'cannot create folder {path}: {err.strerror}') from None
        self.path, self.stamp = path, stamp
        earlier = self._read_stamp()
        claimed = earlier.pop(CLAIMED_KEY, 0) if isinstance(earlier, dict) else 0
        self.claimed = claimed if isinstance(claimed, int) else 0
        frames = sorted(name for name in os.listdir(path) if _FRAME_NAME.fullmatch(name))
        foreign = [name for name in frames if int(name[:8]) >= self.claimed]
        if foreign:
            more = f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''
            raise UserError(
                f'{path}: {foreign[0]}{more} were not written by cnlrn infer (not in its {FRAMES_STAMP}); '
                'move them away or choose another --frames-out'
            )
        if earlier != stamp:
            if frames:
                print(
                    f'{path}: {len(frames)} frames there were restored from another input or with other weights or '
                    'settings: restoring every frame again',
                    file=sys.stderr,
                )
            for name in frames:
                os.remove(os.path.join(path, name))
            self._write_stamp(0)

    def _read_stamp(self) -> object:
        try:
            with open(os.path.join(self.path, FRAMES_STAMP), encoding='utf-8') as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def png(self, index: int) -> str:
        """The PNG of restored frame ``index`` (see :func:`frame_png`)."""
        return frame_png(self.path, index)

    def claim(self, count: int) -> None:
        """Record frames 0 to ``count`` - 1 as this project's, before any of them is written."""
        if count > self.claimed:
            self._write_stamp(count)

    def _write_stamp(self, claimed: int) -> None:
        atomic_write(os.path.join(self.path, FRAMES_STAMP), json.dumps({**self.stamp, CLAIMED_KEY: claimed}).encode())
        self.claimed = claimed


def _written_frame(png_path: str, height: int, width: int, scale: int) -> np.ndarray | None:
    """RGB samples of a frame restored by an earlier run, or None where there is none of the upscaled size."""
    if not os.path.isfile(png_path):
        return None
    bgr = cv2.imread(png_path, cv2.IMREAD_COLOR)  # PNGs appear only complete (write_png renames them)
    if bgr is None or bgr.shape[:2] != (height * scale, width * scale):
        return None
    return bgr[..., ::-1]


def restore_video(
    network: LoadedNetwork,
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    settings: InferenceSettings,
    crf: int = DEFAULT_CRF,
    lossless: bool = False,
    frames_out: str | os.PathLike | None = None,
    progress: bool = True,
    batch: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int | None = None,
    outscale: float | None = None,
) -> int:
    """Write every frame of the video ``path`` upscaled by ``network`` into the video ``out_path``; return how many.

    The output (.mp4 or .mkv, see :func:`~.video_io.output_extension`) keeps the
    input's timestamps, frame rate, display rotation and audio streams (copied
    bit for bit); it appears under its name only once complete.

    Args:
        network (LoadedNetwork): the upscaler on the settings' device, e.g. from :func:`~.network.load_network`.
        path (str | os.PathLike): the input video, in any container and codec FFmpeg decodes.
        out_path (str | os.PathLike): the output video, .mp4 or .mkv.
        settings (InferenceSettings): how the network runs on each frame, as :func:`~.upscale.upscale` takes them.
        crf (int): H.264 constant rate factor, 0 (best) to 51.
        lossless (bool): encode the restored RGB samples exactly (libx264rgb; ``crf`` unused).
        frames_out (str | os.PathLike | None): folder for the restored frames as PNGs
            (:func:`frame_png`); frames already there, from an interrupted run of the same
            input, network and settings, are read instead of being restored again; those
            of another (:data:`FRAMES_STAMP` tells) are deleted. Frame PNGs there that
            this project did not write are refused (see :class:`FramesFolder`).
        progress (bool): show a progress bar of frames with an ETA.
        batch (int | None): whole frames per network call; None: :func:`frames_per_batch`.
            Running out of memory on a batch goes on one frame at a time. With tiles, 1:
            a batch of whole frames would undo the tiles' bound on memory.
        max_pixels (int): videos of larger frames (width x height) are refused: from the header before
            any frame is decoded, and each decoded frame before it reaches the network.
        max_frames (int | None): videos of more frames are refused, counted as they are decoded
            (headers can be wrong), before the first frame over it reaches the network; None: any.
        outscale (float | None): the output frames' size over the input's, each restored frame resized by
            Lanczos before it is encoded (see :func:`~.upscale.outscaled`; ``frames_out`` keeps the network's
            scale); None: the network's.

    Raises:
        UserError: one line naming ``path`` for a file that cannot be opened or decoded,
            is truncated, has no video stream or an unsupported codec, has frames over
            ``max_pixels`` or more than ``max_frames``, or whose output cannot be written;
            nothing is then left at ``out_path``.
    """
    av = import_optional('av', FEATURE)
    check_crf(crf)
    frames = FramesFolder(frames_out, frames_stamp(network, path, settings)) if frames_out is not None else None
    if settings.tile:
        batch = 1
    with (
        open_video(path, max_pixels, max_frames) as video,
        video_output(out_path) as out,
        tqdm(
            total=video.frame_count, unit='frame', desc=os.path.basename(path), disable=not progress, leave=False
        ) as bar,
    ):
        restorer = _Restorer(video, out, network, settings, crf, lossless, frames, batch, bar, outscale)
        for item in video.contents():
            if isinstance(item, av.Packet):
                restorer.copy_audio(item)
            else:
                restorer.add_frame(item)
        restorer.flush()
        restorer.writer.finish()
    return restorer.writer.frames


class _Restorer:
    """Decoded frames in, restored frames out to a :class:`~.video_io.VideoWriter` made with the first one.

    Frames wait until a batch is full; audio packets wait until the writer exists.
    """

    def __init__(self, video, out, network, settings, crf, lossless, frames, batch, bar, outscale):
        self.video, self.out, self.network, self.settings = video, out, network, settings
        self.outscale = outscale
        self.crf, self.lossless, self.frames, self.batch, self.bar = crf, lossless, frames, batch, bar
        self.writer = None
        self.audio = []  # packets demuxed before the output's streams exist
        self.pending = []  # frames decoded, not yet restored
        self.decoded = 0

    def copy_audio(self, packet):
        if self.writer is None:
            self.audio.append(packet)
        else:
            self.writer.copy_packet(packet)

    def add_frame(self, frame):
        if self.batch is None:
            self.batch = frames_per_batch(self.settings.device, frame.height, frame.width, self.settings.tile)
        if self.pending and (frame.width, frame.height) != (self.pending[0].width, self.pending[0].height):
            self.flush()
        self.pending.append(frame)
        self.decoded += 1
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self):
        """Restore the frames waiting and encode them."""
        first = self.decoded - len(self.pending)
        names = [f'{self.video.path} (frame {first + i})' for i in range(len(self.pending))]
        pngs = [self.frames and self.frames.png(first + i) for i in range(len(self.pending))]
        images = [UserImage(frame_rgb(frame)[..., ::-1]) for frame in self.pending]  # BGR, as read_image gives
        scale = self.network.scale
        restored = [png and _written_frame(png, *image.pixels.shape[:2], scale) for png, image in zip(pngs, images)]
        missing = [i for i, done in enumerate(restored) if done is None]
        if self.frames and missing:
            self.frames.claim(first + missing[-1] + 1)
        outputs = self._forward([images[i] for i in missing]) if len(missing) > 1 else None
        for k, i in enumerate(missing):
            if outputs is None:
                net, settings = self.network.module, self.settings
            else:  # the batch's output for this frame, checked and quantized as upscale does
                net, settings = (lambda _, k=k: outputs[k : k + 1]), replace(self.settings, self_ensemble=False)
            restored[i] = upscale_into(lambda bands: np.concatenate(list(bands)), net, images[i], names[i], settings)
            if pngs[i]:
                write_png(pngs[i], [restored[i]])
        for frame, rgb, png, image in zip(self.pending, restored, pngs, images):
            height, width = image.pixels.shape[:2]
            self._write(frame, outscaled(rgb, width, height, self.outscale), png)
        self.pending = []

    def _forward(self, images):
        """The network's output for ``images`` in one call, or None where it runs out of memory (then one at a
        time from now on)."""
        x = torch.cat(
            [torch.from_numpy(image.rgb(slice(None), slice(None))).permute(2, 0, 1)[None] for image in images]
        )
        try:
            return forward(self.network.module, x.to(self.settings.device), self.settings)
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
        release_cached_memory(self.settings.device)
        self.batch = 1
        return None

    def _write(self, frame, rgb, png):
        if self.writer is None:
            height, width = rgb.shape[:2]
            self.writer = VideoWriter(self.out, self.video, frame, width, height, self.crf, self.lossless)
            self.input_size = frame.height, frame.width
            for packet in self.audio:
                self.writer.copy_packet(packet)
            self.audio = None
        elif rgb.shape[:2] != (self.writer.stream.height, self.writer.stream.width):
            # the input changed size, or a restored frame found in --frames-out was made from another input
            if (frame.height, frame.width) != self.input_size or not png:
                cause = 'videos must keep their frame size'
            else:
                cause = f'{png} is from another run: remove its folder'
            raise UserError(
                f'{self.video.path}: frame {self.writer.frames} restored is {rgb.shape[1]}x{rgb.shape[0]}, '
                f'unlike the frames before it; {cause}'
            )
        self.writer.write_frame(rgb, frame)
        self.bar.update()
