"""Read and write the images users give ``cnlrn infer`` (found by :mod:`cnlrn_base.input_files`).

Every mode is kept: 8- or 16-bit, grayscale, gray+alpha, RGB or RGBA. A
:class:`UserImage` holds the decoded samples, turned upright as their EXIF
orientation says (as image viewers show them); the network sees RGB floats
in [0, 1], made one tile at a time. Headers are read before anything is
decoded, so images over the pixel limit and animations are refused unread.
PNG outputs are encoded band by band as they are computed, so nothing is
lost and no full-size copy is held; JPEG and WebP outputs (``--ext``) and
outputs resized to another scale (``--outscale``) are written whole.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image

from cnlrn_base.atomic import atomic_write, write_failure
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import DEFAULT_MAX_PIXELS
from cnlrn_base.output_paths import OUTPUT_MARK

# EXIF orientation -> what turns the stored pixels upright (Pillow's ImageOps.exif_transpose)
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a),
}

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# PNG colour type by channel count: gray, gray+alpha, RGB, RGBA
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_PNG_FILTER_UP = 2
# the tEXt chunk that tells the PNGs write_png wrote (see is_own_png)
_PNG_MARK = b'Software\0' + OUTPUT_MARK.encode()
# the input extensions --ext auto keeps as the output's type (any other input is written as PNG)
_KEPT_TYPES = {'.png': 'png', '.jpg': 'jpg', '.jpeg': 'jpg', '.webp': 'webp'}
# Pillow's format names; JPEG at OpenCV's (and so Real-ESRGAN's) default quality, WebP lossless as OpenCV's default
_PILLOW_FORMATS = {'jpg': ('JPEG', {'quality': 95}), 'webp': ('WEBP', {'lossless': True})}


@dataclass
class UserImage:
    """A decoded image, upright, as OpenCV orders channels.

    Attributes:
        pixels (np.ndarray): uint8 or uint16 samples: H x W (gray), H x W x 2
            (gray, alpha), H x W x 3 (BGR) or H x W x 4 (BGRA).
    """

    pixels: np.ndarray

    @property
    def gray(self) -> bool:
        """Whether the colours are one gray channel (written back as such)."""
        return self.pixels.ndim == 2 or self.pixels.shape[2] == 2

    @property
    def has_alpha(self) -> bool:
        """Whether the last channel is alpha (upscaled by bicubic, not by the network)."""
        return self.pixels.ndim == 3 and self.pixels.shape[2] in (2, 4)

    def rgb(self, rows: slice, cols: slice) -> np.ndarray:
        """The crop ``rows`` x ``cols`` as the network sees it: h x w x 3 float32 RGB in [0, 1], gray replicated.

        Args:
            rows (slice): LR rows of the crop.
            cols (slice): LR columns of the crop.
        """
        crop = self.pixels[rows, cols]
        if self.gray:
            gray = crop if crop.ndim == 2 else crop[..., 0]
            rgb = np.repeat(gray[..., None], 3, axis=2)
        else:
            rgb = crop[..., 2::-1]
        return rgb.astype(np.float32) / np.iinfo(crop.dtype).max

    def alpha(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` of the alpha channel as h x W float32 in [0, 1]; only for images that have one.

        Args:
            rows (slice): LR rows.
        """
        return self.pixels[rows, :, -1].astype(np.float32) / np.iinfo(self.pixels.dtype).max

    def samples(self, x: np.ndarray) -> np.ndarray:
        """Floats ``x`` clipped to [0, 1] and rounded to this image's sample type.

        Args:
            x (np.ndarray): values of any shape.
        """
        peak = np.iinfo(self.pixels.dtype).max
        return np.round(np.clip(x, 0, 1) * peak).astype(self.pixels.dtype)


def _read_header(path: str | os.PathLike) -> tuple[int, int, int, object, bool]:
    """(width, height, frames, EXIF orientation, whether gray+alpha) from ``path``'s header, nothing decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # read_image applies its own limit
            with Image.open(path) as img:
                # Pillow decodes a PNG to find EXIF stored after the pixels; only EXIF before them is used
                exif = img.getexif() if img.format != 'PNG' or 'exif' in img.info else {}
                orientation = exif.get(ExifTags.Base.Orientation)
                return *img.size, getattr(img, 'n_frames', 1), orientation, _is_gray_alpha(img)
    except Image.DecompressionBombError as err:
        raise UserError(f'{path}: {err}') from None
    except Image.UnidentifiedImageError:
        reason = 'empty file' if os.path.getsize(path) == 0 else 'not an image file (format not recognised)'
        raise UserError(f'{path}: {reason}') from None
    except OSError as err:
        raise UserError(f'{path}: cannot read ({err.strerror or err})') from None
    except (SyntaxError, ValueError, EOFError) as err:  # Pillow's answers to broken headers
        raise UserError(f'{path}: broken image header ({err})') from None


def _is_gray_alpha(img: Image.Image) -> bool:
    """Pillow's modes LA and La, and 16-bit gray+alpha, which Pillow widens to RGBA from the raw mode 'LA;16B'."""
    args = img.tile[0].args if img.tile else None
    raw_mode = args[0] if isinstance(args, tuple) else args
    return img.mode in ('LA', 'La') or (isinstance(raw_mode, str) and raw_mode.startswith('LA'))


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> UserImage:
    """Read ``path`` as an upright :class:`UserImage`; UserError naming the file if it cannot or must not be used.

    Args:
        path (str | os.PathLike): the image file.
        max_pixels (int): the most pixels (width x height) accepted; checked
            from the header, before decoding.

    Raises:
        UserError: for unreadable, undecodable or unsupported files, images
            over ``max_pixels`` and files of several frames (animations,
            multi-page TIFFs).
    """
    width, height, frames, orientation, gray_alpha = _read_header(path)
    if width * height > max_pixels:
        raise UserError(
            f'{path}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}; '
            'not decoded (raise the limit with --max-pixels)'
        )
    if frames > 1:
        raise UserError(f'{path}: {frames} frames; cnlrn infer restores single images, extract the frames first')
    try:
        # imdecode of the bytes, not imread, so that an unreadable file and an undecodable one differ
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise UserError(f'{path}: cannot read ({err.strerror})') from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # unchanged: the alpha channel is kept, EXIF not applied
    except cv2.error as err:
        raise UserError(f'{path}: cannot decode ({str(err).strip().splitlines()[-1]})') from None
    del data  # the file's bytes, before the samples are copied upright
    if img is None:
        raise UserError(f'{path}: not an image OpenCV can decode')
    if img.dtype not in (np.uint8, np.uint16):
        raise UserError(f'{path}: {img.dtype} samples are not supported, only 8- and 16-bit images')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 4 and gray_alpha:
        img = img[..., [0, 3]]  # OpenCV decodes gray+alpha as BGRA
    elif img.ndim == 3 and img.shape[2] not in (2, 3, 4):
        raise UserError(f'{path}: {img.shape[2]} channels are not supported (1 to 4)')
    upright = _UPRIGHT.get(orientation)
    return UserImage(np.ascontiguousarray(upright(img) if upright else img))


def write_png(path: str | os.PathLike, bands: Iterable[np.ndarray]) -> None:
    """Write the image whose rows ``bands`` hold, from the top, as a PNG that appears only once complete.

    Each band is encoded as it comes, so one band at a time is in memory; if
    producing a band raises, nothing is left at ``path``. The PNG says it was
    written here (:func:`is_own_png`).

    Args:
        path (str | os.PathLike): the PNG to write.
        bands (Iterable[np.ndarray]): uint8 or uint16 rows, all as wide: h x W
            (gray) or h x W x 2, 3, 4 (gray+alpha, RGB, RGBA).
    """
    try:
        atomic_write(path, partial(_write_png, bands=bands))
    except OSError as err:
        raise UserError(write_failure(path, err)) from None


def _write_png(f: BinaryIO, bands: Iterable[np.ndarray]) -> None:
    f.write(PNG_SIGNATURE + bytes(25))  # room for IHDR, written once the height is known
    _write_chunk(f, b'tEXt', _PNG_MARK)
    compressor = zlib.compressobj()
    height = 0
    above = None
    for band in bands:
        # PNG stores 16-bit samples big-endian; a row is its samples' bytes
        rows = np.ascontiguousarray(band, band.dtype.newbyteorder('>')).view(np.uint8).reshape(len(band), -1)
        if above is None:
            width, depth, channels = band.shape[1], 8 * band.itemsize, 1 if band.ndim == 2 else band.shape[2]
            above = np.zeros_like(rows[0])
        # filter Up: each byte minus the one above, modulo 256 as uint8 wraps; smooth images compress well so
        filtered = np.hstack(
            [np.full((len(rows), 1), _PNG_FILTER_UP, np.uint8), np.diff(np.vstack([above, rows]), axis=0)]
        )
        _write_chunk(f, b'IDAT', compressor.compress(filtered))
        above = rows[-1].copy()
        height += len(rows)
    _write_chunk(f, b'IDAT', compressor.flush())
    _write_chunk(f, b'IEND', b'')
    f.seek(len(PNG_SIGNATURE))
    _write_chunk(f, b'IHDR', struct.pack('>IIBBBBB', width, height, depth, _PNG_COLOUR_TYPES[channels], 0, 0, 0))


def is_own_png(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG :func:`write_png` wrote: its first chunk after the header is the mark."""
    header = len(PNG_SIGNATURE) + 25  # the signature, then IHDR, whatever it holds
    mark = struct.pack('>I', len(_PNG_MARK)) + b'tEXt' + _PNG_MARK
    try:
        with open(path, 'rb') as f:
            head = f.read(header + len(mark))
    except OSError:
        return False
    return head.startswith(PNG_SIGNATURE) and head[header:] == mark


def _write_chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    if data or kind != b'IDAT':  # the compressor often returns nothing yet
        f.write(struct.pack('>I', len(data)) + kind)
        f.write(data)
        f.write(struct.pack('>I', zlib.crc32(data, zlib.crc32(kind))))


def output_type(path: str, ext: str) -> str:
    """The type ('png', 'jpg' or 'webp') of the output of the input ``path`` for ``--ext ext``.

    Args:
        path (str): the input image.
        ext (str): 'png', 'jpg', 'webp', or 'auto': the input's own type for PNG, JPEG and WebP, else PNG.
    """
    if ext != 'auto':
        return ext
    return _KEPT_TYPES.get(os.path.splitext(path)[1].lower(), 'png')


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of an output ``scale`` times a ``width`` x ``height`` input: int() of each, at least 1."""
    return max(1, int(width * scale)), max(1, int(height * scale))


def resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """``pixels`` (any mode, 8- or 16-bit) resized to ``width`` x ``height`` by Lanczos, as Real-ESRGAN's --outscale."""
    if pixels.shape[:2] == (height, width):
        return pixels
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LANCZOS4)


def write_image(path: str | os.PathLike, pixels: np.ndarray, kind: str) -> None:
    """Write ``pixels`` as the image of type ``kind`` at ``path``, marked as this project's (:func:`is_own_image`).

    PNG keeps every mode and 16 bits; WebP keeps alpha, in 8 bits (gray becomes RGB); JPEG
    keeps neither alpha (dropped) nor 16 bits.

    Args:
        path (str | os.PathLike): the file to write; it appears only once complete.
        pixels (np.ndarray): uint8 or uint16 samples in RGB order, as :func:`write_png` takes them.
        kind (str): 'png', 'jpg' or 'webp'.
    """
    if kind == 'png':
        write_png(path, [pixels])
        return
    if pixels.dtype == np.uint16:
        pixels = np.round(pixels / 257).astype(np.uint8)  # 65535 -> 255
    has_alpha = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
    colour = pixels[..., :-1] if has_alpha else pixels
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[..., 0]
    if kind == 'webp':  # Pillow writes WebP as RGB or RGBA only
        if colour.ndim == 2:
            colour = np.repeat(colour[..., None], 3, axis=2)
        if has_alpha:
            colour = np.dstack([colour, pixels[..., -1]])
    image = Image.fromarray(np.ascontiguousarray(colour))
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = OUTPUT_MARK
    name, options = _PILLOW_FORMATS[kind]

    def encode(f: BinaryIO) -> None:
        image.save(f, name, exif=exif.tobytes(), **options)

    try:
        atomic_write(path, encode)
    except OSError as err:
        raise UserError(write_failure(path, err)) from None


def is_own_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an image :func:`write_image` wrote: a marked PNG, or a JPEG or WebP whose EXIF
    Software tag is the mark (read from the header, nothing decoded)."""
    if is_own_png(path):
        return True
    try:
        with Image.open(path) as img:
            return img.format in ('JPEG', 'WEBP') and img.getexif().get(ExifTags.Base.Software) == OUTPUT_MARK
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return False
