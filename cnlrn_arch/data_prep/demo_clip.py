"""A short blurry low-resolution video with sound, made from a photograph inside scikit-image, for tests and demos.

A window pans across the photo; each frame is that crop blurred by its own
random camera shake (as the demo data's, :mod:`cnlrn_arch.data.motion_blur`),
downscaled x4 with MATLAB-compatible bicubic and encoded by PyAV, beside a
440 Hz tone. Nothing is downloaded; the same arguments give the same frames.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from cnlrn_arch.data.motion_blur import blur, shake_kernels
from cnlrn_arch.data_prep.demo_data import BLUR_LENGTH, load_photo
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.optional import import_optional
from cnlrn_base.project import SCALE

AUDIO_RATE = 48000
TONE_HZ = 440
# time-base ticks per nominal frame period: variable-rate clips space their frames 2, 4 or 6 ticks apart
TICKS_PER_FRAME = 4
VARIABLE_STEPS = (2, 4, 6)
# FFmpeg's sample formats (without the planar 'p') -> numpy's
_SAMPLE_TYPES = {'u8': 'uint8', 's16': 'int16', 's32': 'int32', 'flt': 'float32', 'dbl': 'float64'}


def demo_frames(frames: int, size: tuple[int, int], photo: str = 'astronaut', seed: int = 0):
    """(sharp HR, blurry LR) RGB uint8 frames, ``frames`` of them, the LR of ``size`` (width, height): a pan over
    ``photo``, blurred, x4 down."""
    rng = np.random.default_rng(seed)
    image = load_photo(photo)[..., ::-1].astype(np.float32) / 255  # load_photo gives BGR
    width, height = size[0] * SCALE, size[1] * SCALE
    photo_h, photo_w = image.shape[:2]
    if width > photo_w or height > photo_h:
        raise ValueError(f'{size[0]}x{size[1]} LR frames need a photo over {width}x{height}; {photo} is smaller')
    for i in range(frames):
        along = i / max(frames - 1, 1)
        top, left = round(along * (photo_h - height)), round(along * (photo_w - width))
        sharp = image[top : top + height, left : left + width]
        blurry = blur(sharp, shake_kernels(rng, BLUR_LENGTH), rng)
        yield (
            np.round(sharp * 255).astype(np.uint8),
            bicubic_resize_uint8(np.clip(np.round(blurry * 255), 0, 255).astype(np.uint8), 1 / SCALE),
        )


def make_demo_clip(
    path: str | os.PathLike,
    frames: int = 12,
    fps: int = 12,
    size: tuple[int, int] = (64, 48),
    photo: str = 'astronaut',
    seed: int = 0,
    video_codec: str = 'libx264',
    pix_fmt: str = 'yuv420p',
    audio_codec: str | None = 'aac',
    variable_rate: bool = False,
    container_options: dict[str, str] | None = None,
) -> None:
    """Write the clip ``path`` (its extension picks the container).

    Args:
        path (str | os.PathLike): the video file to write.
        frames (int): how many frames.
        fps (int): nominal frame rate.
        size (tuple[int, int]): LR (width, height); odd sides need a codec and
            ``pix_fmt`` without chroma subsampling (e.g. libx264 with yuv444p, or ffv1).
        photo (str): the skimage.data photograph to pan over.
        seed (int): seed of the blur.
        video_codec (str): FFmpeg encoder of the frames.
        pix_fmt (str): their pixel format.
        audio_codec (str | None): encoder of the tone, None for a silent clip.
        variable_rate (bool): space the frames irregularly (:data:`VARIABLE_STEPS` ticks of
            a quarter frame period) instead of one period apart.
        container_options (dict[str, str] | None): options of FFmpeg's muxer, e.g.
            ``{'movflags': 'faststart'}`` to put an MP4's index first.
    """
    av = import_optional('av', 'video files')
    time_base = Fraction(1, fps * TICKS_PER_FRAME)
    with av.open(os.fspath(path), 'w', options=container_options or {}) as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = pix_fmt
        video.codec_context.time_base = video.time_base = time_base
        audio = out.add_stream(audio_codec, rate=AUDIO_RATE, layout='mono') if audio_codec else None
        pts = samples = 0
        for index, (_, rgb) in enumerate(demo_frames(frames, size, photo, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
            frame.pts, frame.time_base = pts, time_base
            out.mux(video.encode(frame))
            pts += VARIABLE_STEPS[index % len(VARIABLE_STEPS)] if variable_rate else TICKS_PER_FRAME
            if audio:
                # the tone up to the next frame's time, in the encoder's frame size
                until = round(pts * time_base * AUDIO_RATE)
                step = audio.codec_context.frame_size or 1024
                while samples + step <= until:
                    out.mux(audio.encode(_tone(av, samples, step, audio)))
                    samples += step
        out.mux(video.encode(None))
        if audio:
            out.mux(audio.encode(None))


def _tone(av, start: int, count: int, stream):
    """``count`` samples of the tone from sample ``start``, as an audio frame in the sample format of ``stream``."""
    t = (start + np.arange(count)) / AUDIO_RATE
    wave = 0.2 * np.sin(2 * np.pi * TONE_HZ * t)
    sample_format = stream.codec_context.format.name  # e.g. AAC takes planar floats ('fltp'), PCM integers
    dtype = np.dtype(_SAMPLE_TYPES[sample_format.rstrip('p')])
    if dtype.kind == 'f':
        samples = wave.astype(dtype)
    else:
        info = np.iinfo(dtype)
        samples = np.round((info.max + info.min + 1) / 2 + wave * info.max).astype(dtype)
    frame = av.AudioFrame.from_ndarray(samples[None], format=sample_format, layout='mono')
    frame.sample_rate = AUDIO_RATE
    frame.pts, frame.time_base = start, Fraction(1, AUDIO_RATE)
    return frame
