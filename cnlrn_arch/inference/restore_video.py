"""Restoring a video file frame by frame into an H.264 video (``cnlrn infer`` on videos, and the web page).

Frames stream through: one decoded frame, its restored copy and the frames
inside the decoder and encoder are in memory, whatever the video's length.
Each restored frame is encoded at its input frame's timestamp; the audio
packets are copied unchanged (see :mod:`.video_io`).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..utils.errors import UserError
from ..utils.optional import import_optional
from .image_io import UserImage, write_png
from .restore_files import upscale_into
from .video_io import DEFAULT_CRF, FEATURE, VideoWriter, check_crf, frame_rgb, open_video, video_output


def frame_png(frames_out: str | os.PathLike, index: int) -> str:
    """The PNG of restored frame ``index`` (from 0, in presentation order) under ``frames_out``."""
    return os.path.join(frames_out, f'{index:08d}.png')


def _written_frame(png_path: str, height: int, width: int) -> np.ndarray | None:
    """RGB samples of a frame restored by an earlier run, or None where there is none of an upscaled size."""
    if not os.path.isfile(png_path):
        return None
    bgr = cv2.imread(png_path, cv2.IMREAD_COLOR)  # PNGs appear only complete (write_png renames them)
    if bgr is None:
        return None
    out_height, out_width = bgr.shape[:2]
    scale = out_height // height
    return bgr[..., ::-1] if scale >= 1 and (out_height, out_width) == (height * scale, width * scale) else None


def restore_video(
    net: nn.Module,
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    device: torch.device,
    tile: int | None = None,
    tile_pad: int = 0,
    self_ensemble: bool = False,
    precision: str | None = None,
    crf: int = DEFAULT_CRF,
    lossless: bool = False,
    frames_out: str | os.PathLike | None = None,
    progress: bool = True,
) -> int:
    """Write every frame of the video ``path`` upscaled by ``net`` to the video ``out_path``; return the frame count.

    The output (.mp4 or .mkv, see :func:`~.video_io.output_extension`) keeps the
    input's timestamps, frame rate, display rotation and audio streams (copied
    bit for bit); it appears under its name only once complete.

    Args:
        net (nn.Module): the upscaler on ``device``, e.g. from :func:`~.network.load_network`.
        path (str | os.PathLike): the input video, in any container and codec FFmpeg decodes.
        out_path (str | os.PathLike): the output video, .mp4 or .mkv.
        device (torch.device): where ``net`` runs.
        tile (int | None): LR tile side; None runs each frame whole.
        tile_pad (int): LR context around each tile.
        self_ensemble (bool): average over the 8 flips/rotations.
        precision (str | None): None (float32) or a key of AMP_DTYPES to autocast to.
        crf (int): H.264 constant rate factor, 0 (best) to 51.
        lossless (bool): encode the restored RGB samples exactly (libx264rgb; ``crf`` unused).
        frames_out (str | os.PathLike | None): folder for the restored frames as PNGs
            (:func:`frame_png`); frames already there, from an interrupted run, are
            read instead of being restored again.
        progress (bool): show a progress bar of frames with an ETA.

    Raises:
        UserError: one line naming ``path`` for a file that cannot be opened or decoded,
            is truncated, has no video stream or an unsupported codec, or whose output
            cannot be written; nothing is then left at ``out_path``.
    """
    av = import_optional('av', FEATURE)
    check_crf(crf)
    if frames_out is not None:
        try:
            os.makedirs(frames_out, exist_ok=True)
        except OSError as err:
            raise UserError(f'cannot create folder {frames_out}: {err.strerror}') from None
    with open_video(path) as video, video_output(out_path) as out:
        writer = None
        waiting = []  # audio packets demuxed before the output's streams exist (made with the first frame)
        with tqdm(
            total=video.frame_count, unit='frame', desc=os.path.basename(path), disable=not progress, leave=False
        ) as bar:
            for item in video.contents():
                if isinstance(item, av.Packet):
                    if writer is None:
                        waiting.append(item)
                    else:
                        writer.copy_packet(item)
                    continue
                index = writer.frames if writer else 0
                png_path = frame_png(frames_out, index) if frames_out is not None else None
                restored = _restored(
                    item, f'{path} (frame {index})', png_path, net, device, tile, tile_pad, self_ensemble, precision
                )
                if writer is None:
                    writer = VideoWriter(out, video, item, restored.shape[1], restored.shape[0], crf, lossless)
                    for packet in waiting:
                        writer.copy_packet(packet)
                    waiting = None
                elif restored.shape[:2] != (writer.stream.height, writer.stream.width):
                    raise UserError(
                        f'{path}: frame {index} is {item.width}x{item.height}, unlike the frames before it; '
                        'videos whose frame size changes are not supported'
                    )
                writer.write_frame(restored, item)
                bar.update()
            writer.finish()
    return writer.frames


def _restored(frame, name, png_path, net, device, tile, tile_pad, self_ensemble, precision) -> np.ndarray:
    """The restored RGB samples of decoded ``frame``: read from ``png_path`` if an earlier run wrote it, else computed
    (and written to ``png_path`` if given)."""
    rgb = frame_rgb(frame)
    if png_path is not None and (done := _written_frame(png_path, *rgb.shape[:2])) is not None:
        return done
    image = UserImage(rgb[..., ::-1])  # BGR, as read_image gives a file's samples
    restored = upscale_into(
        lambda bands: np.concatenate(list(bands)), net, image, name, device, tile, tile_pad, self_ensemble, precision
    )
    if png_path is not None:
        write_png(png_path, [restored])
    return restored
