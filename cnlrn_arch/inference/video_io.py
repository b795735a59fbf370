"""Read the videos users give ``cnlrn infer`` and write their restored copies, with PyAV (FFmpeg's libraries).

Any container and codec FFmpeg decodes is read; the first video stream is
restored, its audio streams are copied packet for packet (bit-identical),
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
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from cnlrn_base.errors import UserError, first_line
from cnlrn_base.inference_defaults import MAX_CRF
from cnlrn_base.optional import import_optional
from cnlrn_base.output_paths import OUTPUT_MARK

# output containers by extension, as FFmpeg names them
OUTPUT_FORMATS = {'.mp4': 'mp4', '.mkv': 'matroska'}
# the container tag holding OUTPUT_MARK (MP4 and Matroska both store it)
MARK_TAG = 'comment'
FEATURE = 'video files'


def check_crf(crf: int) -> None:
    """Raise a UserError unless ``crf`` is a quality libx264 takes."""
    if not 0 <= crf <= MAX_CRF:
        raise UserError(f'--crf {crf}: must lie between 0 (best) and {MAX_CRF}')


def _av():
    return import_optional('av', FEATURE)


def _reason(err: Exception) -> str:
    """FFmpeg's words for ``err`` without PyAV's errno and file name around them."""
    return getattr(err, 'strerror', None) or first_line(err)


@dataclass
class InputVideo:
    """An opened video file: its first video stream and its audio streams.

    Attributes:
        path (str): the file, for messages.
        container: the PyAV input container.
        video: its first video stream.
        audio (list): its audio streams, copied to the output.
        max_pixels (int | None): :meth:`contents` refuses a frame of more pixels (width x height); None: any.
        max_frames (int | None): :meth:`contents` refuses a video of more frames, counted as they are
            decoded (headers can be wrong, or silent); None: any length.
    """

    path: str
    container: object
    video: object
    audio: list
    max_pixels: int | None = None
    max_frames: int | None = None

    @property
    def announced_frames(self) -> int:
        """The frame count an MP4 or MOV file's index gives, else 0 (other containers' counts are estimates:
        AVI's, for one, counts the dropped frames that hold no data)."""
        return self.video.frames if 'mov' in self.container.format.name.split(',') else 0

    @property
    def frame_count(self) -> int | None:
        """Frames the container announces, else an estimate from the duration and frame rate, else None."""
        if self.announced_frames:
            return self.announced_frames
        rate = self.video.average_rate or self.video.guessed_rate
        duration = self.container.duration  # microseconds
        return round(duration / 1_000_000 * rate) if duration and rate else None

    @property
    def announced_duration(self) -> float | None:
        """Seconds of video the stream's DURATION tag gives (FFmpeg's Matroska and WebM muxers write it in the
        header on closing, so a cut copy keeps it), else None."""
        tag = self.video.metadata.get('DURATION', '')
        try:
            hours, minutes, seconds = tag.split(':')
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None

    def _check_limits(self, frame, number: int) -> None:
        """Refuse the decoded ``frame``, the ``number``-th, when it is over the pixel or the frame limit."""
        pixels = frame.width * frame.height
        if self.max_pixels is not None and pixels > self.max_pixels:
            # the header gave the first frame's size only: any later frame may be larger
            raise UserError(
                f'{self.path}: frame {number - 1} is {frame.width}x{frame.height}, {pixels} pixels, '
                f'over the limit of {self.max_pixels}'
            )
        if self.max_frames is not None and number > self.max_frames:
            raise UserError(f'{self.path}: more than {self.max_frames} frames, over the limit of {self.max_frames}')

    def contents(self) -> Iterator[object]:
        """The decoded video frames (``av.VideoFrame``) and the audio packets (``av.Packet``), in file order.

        Raises:
            UserError: naming the file when the data cannot be read or decoded, when fewer
                frames or seconds than announced were decoded (a truncated file), or when a
                frame is over ``max_pixels`` or one more than ``max_frames`` was decoded
                (before that frame is yielded).
        """
        av = _av()
        decoded, last_time = 0, None
        try:
            for packet in self.container.demux(self.video, *self.audio):
                if packet.stream is self.video:
                    for frame in packet.decode():
                        decoded += 1
                        self._check_limits(frame, decoded)
                        last_time = frame.time if frame.time is not None else last_time
                        yield frame
                elif packet.size:  # the empty packets that flush the demuxer carry nothing to copy
                    yield packet
        except av.FFmpegError as err:
            raise UserError(f'{self.path}: cannot decode the video after frame {decoded} ({_reason(err)})') from None
        if decoded < self.announced_frames:
            raise UserError(
                f'{self.path}: truncated or damaged, {decoded} of {self.announced_frames} frames could be decoded'
            )
        if not decoded:
            raise UserError(f'{self.path}: the video stream holds no frame that can be decoded')
        duration, rate = self.announced_duration, self.video.average_rate or self.video.guessed_rate
        # the last frame starts one period before the end; two allow for a variable frame rate
        if duration and rate and last_time is not None and last_time + 2 / rate < duration:
            raise UserError(
                f'{self.path}: truncated or damaged, its video stops at {last_time:.2f} s '
                f'of the {duration:.2f} s its header announces'
            )


@contextmanager
def open_video(
    path: str | os.PathLike, max_pixels: int | None = None, max_frames: int | None = None
) -> Iterator[InputVideo]:
    """``path`` opened for reading, closed after the ``with`` block.

    Args:
        path (str | os.PathLike): the video file.
        max_pixels (int | None): refuse frames of more pixels (width x height): the header's
            size here, every decoded frame's in :meth:`InputVideo.contents`; None: any size.
        max_frames (int | None): refuse videos of more frames, as :meth:`InputVideo.contents`
            counts them; None: any length.

    Raises:
        UserError: one line naming the file, for a file that cannot be read or
            parsed (e.g. truncated before its index), that has no video stream,
            whose video codec FFmpeg cannot decode, or whose frames are over ``max_pixels``.
    """
    av = _av()
    try:
        container = av.open(os.fspath(path), metadata_errors='ignore')
    except av.FFmpegError as err:
        raise UserError(f'{path}: cannot open as a video ({_reason(err)})') from None
    except OSError as err:
        raise UserError(f'{path}: cannot read ({err.strerror or err})') from None
    try:
        if not container.streams.video:
            raise UserError(f'{path}: no video stream')
        video = container.streams.video[0]
        if video.codec_context is None:
            raise UserError(f'{path}: its video codec is not supported (FFmpeg has no decoder for it)')
        if max_pixels is not None and video.width * video.height > max_pixels:
            raise UserError(
                f'{path}: {video.width}x{video.height} frames are {video.width * video.height} pixels, '
                f'over the limit of {max_pixels}'
            )
        video.thread_type = 'AUTO'  # frame threads: several frames in flight, a few more frames of memory
        yield InputVideo(os.fspath(path), container, video, list(container.streams.audio), max_pixels, max_frames)
    finally:
        container.close()


def output_extension(video: InputVideo) -> str:
    """'.mp4', or '.mkv' where an audio stream's codec cannot be stored in MP4 (raw 8-bit PCM, Vorbis...).

    Raises:
        UserError: where Matroska cannot hold the audio either.
    """
    if not video.audio:
        return '.mp4'
    av = _av()
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
        frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
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
    av = _av()
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
            raise UserError(f'cannot write {path}: {_reason(err)}') from None
        out.metadata[MARK_TAG] = OUTPUT_MARK
        try:
            yield out
            out.close()  # writes the index
        except (av.FFmpegError, OSError) as err:
            raise UserError(f'cannot write {path}: {_reason(err)}') from None
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
    av = _av()
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
