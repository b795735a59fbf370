"""Find, read and write the images users give ``cnlrn infer``.

Every mode is kept: 8- or 16-bit, grayscale, RGB or RGBA. The network sees
RGB floats in [0, 1]; :class:`UserImage` remembers how to write the result
back in the input's mode. Outputs are always PNG, so nothing is lost.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..utils.atomic import atomic_write
from ..utils.errors import UserError
from ..utils.image_formats import IMG_EXTENSIONS


@dataclass
class UserImage:
    """An image as the network sees it, and what writing it back in its own mode needs.

    Attributes:
        rgb (np.ndarray): H x W x 3 float32 in [0, 1]; grayscale inputs are replicated to 3 channels.
        alpha (np.ndarray | None): H x W float32 in [0, 1], or None without an alpha channel.
        grayscale (bool): written back as one gray channel (the mean of ``rgb``'s three).
        dtype (np.dtype): uint8 or uint16, the sample type to write back.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool
    dtype: np.dtype


def is_image_name(path: str) -> bool:
    return path.lower().endswith(IMG_EXTENSIONS)


def find_images(patterns: Iterable[str]) -> list[str]:
    """Paths named by files, folders (their images, not recursive) or globs; sorted per argument, no repeats.

    A file named explicitly is kept whatever its extension: if it is not an
    image, reading it fails and it is reported.

    Args:
        patterns (Iterable[str]): file names, folder names and glob patterns,
            as given on the command line.

    Raises:
        UserError: for an argument matching nothing, so a typo is not silently skipped.
    """
    found = []
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        elif os.path.isdir(pattern):
            matches = sorted(
                os.path.join(pattern, name)
                for name in os.listdir(pattern)
                if is_image_name(name) and os.path.isfile(os.path.join(pattern, name))
            )
            if not matches:
                raise UserError(f'no images ({", ".join(IMG_EXTENSIONS)}) in folder {pattern}')
        else:
            matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p) and is_image_name(p))
            if not matches:
                raise UserError(f'no such file or folder, and no image matches the pattern: {pattern}')
        found.extend(matches)
    return list(dict.fromkeys(found))


def read_image(path: str | os.PathLike) -> UserImage:
    """Read ``path`` as a :class:`UserImage`; UserError naming the file if it cannot be used."""
    try:
        # imdecode of the bytes, not imread, so that an unreadable file and an undecodable one differ
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise UserError(f'{path}: cannot read ({err.strerror})') from None
    if data.size == 0:
        raise UserError(f'{path}: empty file')
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise UserError(f'{path}: cannot decode ({str(err).strip().splitlines()[-1]})') from None
    if img is None:
        raise UserError(f'{path}: not an image OpenCV can decode')
    if img.dtype not in (np.uint8, np.uint16):
        raise UserError(f'{path}: {img.dtype} samples are not supported, only 8- and 16-bit images')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        bgr, alpha = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), None
    elif img.shape[2] in (3, 4):
        bgr, alpha = img[..., :3], (img[..., 3] if img.shape[2] == 4 else None)
    else:
        raise UserError(f'{path}: {img.shape[2]} channels are not supported (1, 3 or 4)')
    peak = np.iinfo(img.dtype).max
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / peak
    if alpha is not None:
        alpha = alpha.astype(np.float32) / peak
    return UserImage(rgb, alpha, grayscale=img.ndim == 2, dtype=img.dtype)


def _quantize(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return np.round(np.clip(x, 0, 1) * peak).astype(dtype)


def write_png(path: str | os.PathLike, image: UserImage) -> None:
    """Write ``image`` as a PNG in its own mode; written to a temporary file first so it only appears complete."""
    if image.grayscale:
        # the three outputs of a replicated gray input are close but not equal; their mean is the gray value
        pixels = _quantize(image.rgb.mean(axis=2), image.dtype)
    else:
        pixels = cv2.cvtColor(_quantize(image.rgb, image.dtype), cv2.COLOR_RGB2BGR)
    if image.alpha is not None:  # never with grayscale: OpenCV reads gray+alpha PNGs as BGRA
        pixels = np.dstack([pixels, _quantize(image.alpha, image.dtype)])
    ok, png = cv2.imencode('.png', pixels)
    if not ok:
        raise UserError(f'{path}: OpenCV could not encode the PNG')
    try:
        atomic_write(path, png.tobytes())
    except OSError as err:
        raise UserError(f'{path}: cannot write ({err.strerror})') from None
