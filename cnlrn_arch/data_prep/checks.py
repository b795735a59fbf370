"""Checks of the source images, all made before anything is written: paired, one file a frame, readable, sizes.

Errors are one line naming the first few culprits and how many there are.
"""

import os
import stat
from collections import Counter, namedtuple

from PIL import Image

from cnlrn_arch.data_prep.files import pool_map, require_dir
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import image_files

SHOWN = 3  # culprits named in one error line
# what a path is when it is not a regular file: opening a FIFO would wait for a writer forever
NOT_REGULAR = {stat.S_IFIFO: 'a FIFO', stat.S_IFSOCK: 'a socket', stat.S_IFCHR: 'a device', stat.S_IFBLK: 'a device'}
PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'  # the last chunk of every complete PNG

# size: (height, width); stamp: [bytes, mtime_ns], what the manifests record
Source = namedtuple('Source', 'size stamp')


def listing(culprits, total):
    """'(n of total): a; b; c and k more' for a one-line error."""
    more = f' and {len(culprits) - SHOWN} more' if len(culprits) > SHOWN else ''
    return f'({len(culprits)} of {total}): ' + '; '.join(culprits[:SHOWN]) + more


def image_names(root):
    """Sorted relative paths of the images under ``root``, checked to be one file a frame."""
    names = sorted(image_files(require_dir(root)))
    frames = {}
    for name in names:
        other = frames.setdefault(os.path.splitext(name)[0], name)
        if other != name:
            # both would get one key: one frame would silently replace the other
            raise UserError(f'two images of one frame: {os.path.join(root, other)} and {os.path.join(root, name)}')
    return names


def paired_images(first, second):
    """Sorted relative image paths, checked to be the same under both folders."""
    first_names, second_names = image_names(first), image_names(second)
    if not first_names:
        raise UserError(f'no images found in {first}')
    unpaired = sorted(set(first_names).symmetric_difference(second_names))
    if unpaired:
        has, lacks = (first, second) if unpaired[0] in first_names else (second, first)
        raise UserError(f'{unpaired[0]} is in {has} but not in {lacks}')
    return first_names


def read_source(path):
    """(Source, None) for a readable image file, (None, why not) otherwise.

    Cheap enough for REDS' 48,000 frames: a PNG's header is read and its end
    checked (a truncated file has no IEND chunk) rather than decoding it all;
    a JPEG is decoded at 1/8 scale, which reads all its data; other formats
    are decoded.
    """
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind != stat.S_IFREG:
            return None, f'not a regular file: {NOT_REGULAR.get(kind, "a folder")}'
        with open(path, 'rb') as f, Image.open(f) as img:
            size = img.height, img.width
            if img.format == 'PNG':
                f.seek(-len(PNG_END), os.SEEK_END)
                if f.read() != PNG_END:
                    return None, 'truncated: no PNG end chunk'
            else:
                if img.format == 'JPEG':
                    # at least 1 pixel: PIL divides by the requested size
                    img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
            st = os.fstat(f.fileno())
    except Image.UnidentifiedImageError:
        return None, 'not an image'
    except (OSError, SyntaxError, ValueError) as err:
        return None, str(err)
    return Source(size, [st.st_size, st.st_mtime_ns]), None


def read_sources(paths, workers):
    """path -> :class:`Source` for each of ``paths``; every unreadable one is a (one-line) error."""
    sources, unreadable = {}, []
    for (source, why), path in zip(pool_map(read_source, paths, workers, 'checking sources'), paths):
        sources[path] = source
        if why:
            unreadable.append(f'{path} ({why})')
    if unreadable:
        raise UserError(f'unreadable source images {listing(unreadable, len(paths))}')
    return sources


def hw(size):
    return f'{size[0]}x{size[1]}'


def check_scale(pairs, sources, scale, what):
    """Each ``(large, small)`` path pair of ``pairs`` has large = ``scale`` x small in size; ``what`` names
    the offence in the error."""
    bad = [
        f'{large} {hw(sources[large].size)} vs {small} {hw(sources[small].size)}'
        for large, small in pairs
        if sources[large].size != tuple(scale * side for side in sources[small].size)
    ]
    if bad:
        raise UserError(f'{what} {listing(bad, len(pairs))}')


def check_same_size(paths, sources, what):
    """All ``paths`` have one size: the error names those of another size than most."""
    common = Counter(sources[p].size for p in paths).most_common(1)[0][0]
    bad = [f'{p} {hw(sources[p].size)}' for p in paths if sources[p].size != common]
    if bad:
        raise UserError(f'{what} not of the size of the others, {hw(common)}, {listing(bad, len(paths))}')
