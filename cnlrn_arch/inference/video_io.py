"""Write the restored copies of the videos users give ``cnlrn infer``, with PyAV (FFmpeg's libraries).

The inputs are read by :mod:`cnlrn_base.video_input` (any container and codec FFmpeg decodes); the first
video stream is restored, its audio streams are copied packet for packet (bit-identical),
other streams (subtitles, data, further video streams) are left out. The
output is H.264 in MP4, or in Matroska when an audio codec cannot go into MP4
(:func:`output_extension`). Every restored frame keeps its input timestamp,
so variable frame rates, start offsets and the duration are kept, and so is
the display rotation. Frames stream through one at a time; the output is
written under a temporary name in its folder and renamed once complete.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import numpy as np

from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import MAX_CRF
from cnlrn_base.output_paths import OUTPUT_MARK
from cnlrn_base.video_input import InputVideo, ffmpeg_reason, import_av

# output containers by extension, as FFmpeg names them
OUTPUT_FORMATS = {'.mp4': 'mp4', '.mkv': 'matroska'}
# the container tag holding OUTPUT_MARK (MP4 and Matroska both store it)
MARK_TAG = 'comment'


def check_crf(crf: int) -> None:
    """Raise a UserError unless ``crf`` is a quality libx264 takes."""
    if not 0 <= crf <= MAX_CRF:
        raise UserError(f'--crf {crf}: must lie between 0 (best) and {MAX_CRF}')


def output_extension(video: InputVideo) -> str:
    """'.mp4', or '.mkv' where an audio stream's codec cannot be stored in MP4 (raw 8-bit PCM, Vorbis...).

    Raises:
        UserError: where Matroska cannot hold the audio either.
    """
    if not video.audio:
        return '.mp4'
    av = import_av()
    for extension, container_format in OUTPUT_FORMATS.items():
        probe = av.open(io.BytesIO(), 'w', format=container_format)
        try:
            for stream in video.audio:
                probe.add_stream_from_template(stream)
            probe.start_encoding()
            return extension
        except (av.FFmpegError, ValueError):
            continue
        finally:
            probe.close()
    codecs = ', '.join(stream.codec_context.name for stream in video.audio)
    raise UserError(f'{video.path}: its audio ({codecs}) can be stored neither in MP4 nor in Matroska')


def frame_rgb(frame) -> np.ndarray:
    """H x W x 3 uint8 RGB samples of a decoded ``av.VideoFrame``, converted as its colour tags say."""
    return frame.to_ndarray(format='rgb24', src_color_range=frame.color_range)


class VideoWriter:
    """H.264 output holding restored frames at their input timestamps and the input's audio packets unchanged.

    Args:
        out: the PyAV output container.
        video (InputVideo): the input, for its frame rate, time base and audio streams.
        first (av.VideoFrame): the input's first decoded frame, for its colours and rotation.
        width (int): width of the restored frames.
        height (int): their height.
        crf (int): libx264's constant rate factor (0 to 51, lower is better).
        lossless (bool): libx264rgb encoding the RGB samples exactly (crf is then unused).
    """

    def __init__(self, out, video: InputVideo, first, width: int, height: int, crf: int, lossless: bool):
        self.out, self.first, self.lossless = out, first, lossless
        rate = video.video.average_rate or video.video.guessed_rate
        # lossless YUV still loses in the RGB -> YUV conversion; libx264rgb encodes the RGB planes themselves
        stream = out.add_stream('libx264rgb' if lossless else 'libx264', rate=rate)
        stream.width, stream.height = width, height
        # odd sides (a network of odd scale) cannot be chroma-subsampled
        self.pix_fmt = 'rgb24' if lossless else 'yuv420p' if width % 2 == height % 2 == 0 else 'yuv444p'
        stream.pix_fmt = self.pix_fmt
        stream.options = {'qp': '0'} if lossless else {'crf': str(crf)}
        # the input's time base keeps every timestamp exactly (variable frame rates included); the muxer may
        # store them in another one, converting exactly where it can (MP4 picks a multiple of the frame rate)
        self.time_base = stream.codec_context.time_base = stream.time_base = video.video.time_base
        if not lossless:
            for tag in ('colorspace', 'color_range', 'color_primaries', 'color_trc'):
                setattr(stream.codec_context, tag, getattr(first, tag))
        if first.rotation:
            stream.set_display_rotation(first.rotation)
        self.stream = stream
        self.audio = {template.index: out.add_stream_from_template(template) for template in video.audio}
        self.period = 1 / Fraction(rate) / self.time_base if rate else 1
        self.frames = 0

    def write_frame(self, rgb: np.ndarray, like) -> None:
        """Encode H x W x 3 uint8 RGB ``rgb`` at the timestamp of input frame ``like``."""
        frame = import_av().VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        if not self.lossless:
            frame = frame.reformat(
                format=self.pix_fmt, dst_colorspace=self.first.colorspace, dst_color_range=self.first.color_range
            )
        # frames without a timestamp (some AVI files) are spaced by the nominal frame rate
        frame.pts = like.pts if like.pts is not None else round(self.frames * self.period)
        frame.time_base = self.time_base
        self.out.mux(self.stream.encode(frame))
        self.frames += 1

    def copy_packet(self, packet) -> None:
        """Store the audio ``packet`` of the input unchanged, its timestamps rebased to its output stream."""
        packet.stream = self.audio[packet.stream.index]
        self.out.mux(packet)

    def finish(self) -> None:
        """Encode the frames the encoder still holds."""
        self.out.mux(self.stream.encode(None))


@contextmanager
def video_output(path: str | os.PathLike) -> Iterator[object]:
    """A PyAV output container that appears at ``path`` (.mp4 or .mkv) only once the ``with`` block completes.

    It is written as a hidden temporary file in the same folder, tagged as this
    project's (:func:`is_own_video`), fsynced and renamed over ``path``; if
    anything raises, the temporary file is removed and ``path`` is untouched.

    Raises:
        UserError: when the file cannot be written (a full disk, a missing folder).
    """
    av = import_av()
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise UserError(f'{path}: videos are written as {" or ".join(OUTPUT_FORMATS)}')
    folder, name = os.path.split(os.path.abspath(path))
    tmp_path = os.path.join(folder, f'.{name}.tmp{os.getpid()}')
    try:
        try:
            out = av.open(tmp_path, 'w', format=OUTPUT_FORMATS[extension])
        except (av.FFmpegError, OSError) as err:
            raise UserError(f'cannot write {path}: {ffmpeg_reason(err)}') from None
        out.metadata[MARK_TAG] = OUTPUT_MARK
        try:
            yield out
            out.close()  # writes the index
        except (av.FFmpegError, OSError) as err:
            raise UserError(f'cannot write {path}: {ffmpeg_reason(err)}') from None
        finally:
            out.close()
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(folder)  # the rename itself
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def is_own_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video :func:`video_output` wrote (its container's tag says so)."""
    av = import_av()
    try:
        with av.open(os.fspath(path), metadata_errors='ignore') as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
    except (av.FFmpegError, OSError):
        return False
    return tags.get(MARK_TAG) == OUTPUT_MARK


def _fsync(path: str) -> None:
    """Flush the file or folder ``path`` to its disk, as :func:`~cnlrn_base.atomic.atomic_write` does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
