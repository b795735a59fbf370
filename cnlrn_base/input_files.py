"""What ``cnlrn infer`` takes as input: image and video files, named by extension, found from its arguments.

Both the image path (:mod:`cnlrn_arch.inference.image_io`) and the video path read their kinds here, so
neither imports the other; torch-free, so that ``cnlrn infer`` reads its videos before the network is loaded.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import IMG_EXTENSIONS

VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mkv', '.mov', '.webm', '.avi')


def is_image_name(path: str) -> bool:
    return path.lower().endswith(IMG_EXTENSIONS)


def is_video_name(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def is_input_name(path: str) -> bool:
    """Whether ``path`` names an image or a video by its extension (what folders and globs contribute)."""
    return is_image_name(path) or is_video_name(path)


def _is_input(path: str) -> bool:
    """Regular files, and links to nothing (dangling or looping): reading those names them instead of skipping."""
    return os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path))


def find_images(patterns: Iterable[str]) -> list[str]:
    """Paths named by files, folders (their images and videos, not recursive) or globs; sorted per argument, no repeats.

    A file named explicitly is kept whatever its extension: if it is not an
    image, reading it fails and it is reported. So are image and video names
    that link to nothing.

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
            paths = (os.path.join(pattern, name) for name in os.listdir(pattern) if is_input_name(name))
            matches = sorted(p for p in paths if _is_input(p))
            if not matches:
                extensions = ', '.join(IMG_EXTENSIONS + VIDEO_EXTENSIONS)
                raise UserError(f'no images or videos ({extensions}) in folder {pattern}')
        else:
            matches = sorted(p for p in glob.glob(pattern) if _is_input(p) and is_input_name(p))
            if not matches:
                raise UserError(f'no such file or folder, and no image matches the pattern (nor a video): {pattern}')
        found.extend(matches)
    return list(dict.fromkeys(found))
