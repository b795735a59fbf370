"""Reading the videos users give ``cnlrn infer`` and ``cnlrn serve``, checked frame by frame, with PyAV.

Any container and codec FFmpeg decodes is read: the first video stream's frames and the audio streams'
packets, in file order (:class:`InputVideo`). A frame over the pixel limit, a frame past the frame limit, a
file that stops before its header's frame count or duration, are refused as they are decoded. Torch-free:
``cnlrn infer`` reads its videos whole (:func:`refused_videos`) before it imports torch and loads the
network, so a clip whose second frame is 64 MP is refused in a few hundred megabytes; restoring reads each
video again, frame by frame (:mod:`cnlrn_arch.inference.restore_video`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm

from cnlrn_base.errors import UserError, first_line
from cnlrn_base.input_files import is_video_name
from cnlrn_base.optional import import_optional

FEATURE = 'video files'


def import_av():
    """The ``av`` module (PyAV), or one line saying how to install it."""
    return import_optional('av', FEATURE)


def ffmpeg_reason(err: Exception) -> str:
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
        av = import_av()
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
            raise UserError(
                f'{self.path}: cannot decode the video after frame {decoded} ({ffmpeg_reason(err)})'
            ) from None
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
    av = import_av()
    try:
        container = av.open(os.fspath(path), metadata_errors='ignore')
    except av.FFmpegError as err:
        raise UserError(f'{path}: cannot open as a video ({ffmpeg_reason(err)})') from None
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


def check_video(path: str | os.PathLike, max_pixels: int | None) -> None:
    """Decode every frame of the video ``path`` as restoring it does, keeping none; a progress bar on a terminal.

    Args:
        path (str | os.PathLike): the video file.
        max_pixels (int | None): refuse frames of more pixels (width x height); None: any size.

    Raises:
        UserError: what :func:`open_video` and :meth:`InputVideo.contents` raise for it.
    """
    av = import_av()
    with (
        open_video(path, max_pixels) as video,
        tqdm(
            total=video.frame_count,
            unit='frame',
            desc=f'checking {os.path.basename(path)}',
            leave=False,
            disable=None,  # on a terminal only: in logs a refusal stays one line
        ) as bar,
    ):
        for item in video.contents():
            bar.update(isinstance(item, av.VideoFrame))


def refused_videos(inputs: list[str], max_pixels: int | None) -> list[str] | None:
    """Why each of ``inputs`` cannot be restored, where every one is a video :func:`check_video` refuses; else None.

    ``cnlrn infer`` asks this before it loads the network: when no input would be restored, nothing is
    loaded. It stops at the first input that is not a video or that reads whole, as the network is then
    loaded anyway and restoring checks each video again.

    Args:
        inputs (list[str]): the input files (:func:`~cnlrn_base.input_files.find_images`).
        max_pixels (int | None): refuse videos of larger frames (width x height); None: any size.
    """
    refusals = []
    for path in inputs:
        if not is_video_name(path):
            return None
        try:
            check_video(path, max_pixels)
        except UserError as err:
            refusals.append(str(err))
        else:
            return None
    return refusals
