"""What the data preparation commands share: one run per root, worker pools, outputs checked against their sources.

Outputs only ever appear complete: PNGs are written to a temporary file and
renamed, LMDBs and the demo set are built under a temporary name and renamed,
so an interrupted run can be started again and redoes only what is missing.
An output is skipped as done only once checked: a PNG must decode at its
expected size, an LMDB must list the expected keys and sizes, and the
manifest beside either (``<output>.sources.json``: the size and modification
time of each image's source) must match the sources as they are now; a
changed source rebuilds what was made from it.
"""

import json
import os
import shutil
from contextlib import contextmanager
from multiprocessing import Pool
from os import path as osp

import cv2
import lmdb
import torch
from basicsr.data.transforms import mod_crop
from basicsr.utils.lmdb_util import LmdbMaker
from PIL import Image
from tqdm import tqdm

from cnlrn_base.atomic import atomic_write
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.process_lock import LockHeld, hold
from cnlrn_base.project import SCALE

# LMDB map space beyond 10x the images (bookkeeping pages of small sets)
LMDB_MAP_MARGIN = 64 * 2**20
LMDB_PNG_LEVEL = 1  # the compression BasicSR's LMDB makers use and record in meta_info.txt
LOCK_NAME = '.cnlrn-prepare.lock'
MANIFEST_SUFFIX = '.sources.json'


def lmdb_map_size(image_bytes):
    """LMDB map size for images of ``image_bytes`` in all: BasicSR sizes it from the first image alone,
    too small when images differ in size or are tiny."""
    return 10 * image_bytes + LMDB_MAP_MARGIN


def build_then_rename(path, build):
    """Run ``build(tmp)`` on a fresh temporary path beside ``path``, then rename it to ``path``.

    ``path`` (a file or folder) is replaced only by a complete result; a failed
    build leaves no temporary behind. The temporary name keeps ``path``'s
    suffix, as BasicSR's LMDB writers want ``.lmdb``.
    """
    parent, name = osp.split(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.incomplete-{name}')
    if osp.exists(tmp):
        shutil.rmtree(tmp)
    try:
        result = build(tmp)
        if osp.exists(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return result


def require_dir(path):
    if not osp.isdir(path):
        raise UserError(f'folder not found: {path}')
    return path


@contextmanager
def root_lock(root):
    """Hold ``root`` for this run: another run on it is refused, naming this process (see :mod:`process_lock`)."""
    try:
        fd = hold(osp.join(require_dir(root), LOCK_NAME))
    except LockHeld as held:
        raise UserError(f'{root} is being prepared by another run ({held.holder}); wait for it to finish') from None
    try:
        yield
    finally:
        os.close(fd)


def pool_map(func, items, workers, desc):
    """Yield ``func(item)`` for each of ``items`` in order, with a progress bar; ``workers`` processes.

    First in a zip(), it runs to its end: the bar completes and the pool closes.
    """
    with tqdm(total=len(items), desc=desc, unit='image') as pbar:
        if workers == 1 or len(items) < 2:
            for item in items:
                yield func(item)
                pbar.update()
            return
        # one torch thread per process: the processes already use every core
        with Pool(min(workers, len(items)), initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for result in pool.imap(func, items, chunksize=4):
                yield result
                pbar.update()


# -- manifests: what each output was made from ------------------------------------------------------


def manifest_entries(output, origins, sources):
    """name -> [source path relative to ``output``'s folder, bytes, mtime_ns] for ``origins`` (name -> source).

    ``sources`` maps a source path to its :class:`~.checks.Source`.
    """
    base = osp.dirname(osp.abspath(output))
    return {name: [osp.relpath(osp.abspath(src), base), *sources[src].stamp] for name, src in origins.items()}


def read_manifest(output):
    """The manifest beside ``output``; {} if missing or unreadable (then nothing counts as up to date)."""
    try:
        with open(output + MANIFEST_SUFFIX, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_manifest(output, entries):
    atomic_write(output + MANIFEST_SUFFIX, json.dumps(entries, indent=0, sort_keys=True).encode())


# -- PNG folders ------------------------------------------------------------------------------------


def output_size(size, crop, downscale):
    """(height, width) of the PNG :func:`convert_image` writes from an image of ``size``."""
    h, w = size
    if crop:
        h, w = h - h % SCALE, w - w % SCALE
    return (h // SCALE, w // SCALE) if downscale else (h, w)


def decoded_size(path):
    """(height, width) of the image at ``path`` decoded in full; None if it is missing or does not decode."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.height, img.width
    except (OSError, SyntaxError, ValueError):
        return None


def convert_image(job):
    """Write PNG ``dst`` from ``src`` (sides cropped to multiples of SCALE and downscaled if asked) unless
    ``dst`` already decodes at ``size``; return whether it was written."""
    src, dst, crop, downscale, size = job
    if decoded_size(dst) == size:
        return False
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f'cannot read image {src}')
    if crop:
        img = mod_crop(img, SCALE)
    if downscale:
        img = bicubic_resize_uint8(img, 1 / SCALE)
    ok, png = cv2.imencode('.png', img)
    if not ok:
        raise UserError(f'cannot encode {dst}')
    os.makedirs(osp.dirname(dst), exist_ok=True)
    atomic_write(dst, png.tobytes())
    return True


def convert_images(out_dir, jobs, sources, workers, desc):
    """Write ``out_dir/<name>`` for each ``name -> (src, crop, downscale)`` of ``jobs`` (see :func:`convert_image`).

    Images made from a source that has changed since (or by a run that left no
    manifest) are removed before the manifest is written, so every image in
    ``out_dir`` was made from the source its manifest entry records, and an
    interrupted run resumes where it stopped.
    """
    entries = manifest_entries(out_dir, {name: src for name, (src, _, _) in jobs.items()}, sources)
    old = read_manifest(out_dir)
    if old != entries:
        for name in set(old) | set(entries):
            if old.get(name) != entries.get(name) and osp.isfile(osp.join(out_dir, name)):
                os.remove(osp.join(out_dir, name))
        os.makedirs(out_dir, exist_ok=True)
        write_manifest(out_dir, entries)
    todo = [
        (src, osp.join(out_dir, name), crop, downscale, output_size(sources[src].size, crop, downscale))
        for name, (src, crop, downscale) in jobs.items()
    ]
    written = sum(pool_map(convert_image, todo, workers, desc))
    print(f'{desc}: {len(todo) - written} of {len(todo)} images were already complete')


# -- LMDBs ------------------------------------------------------------------------------------------


def encode_for_lmdb(path):
    """(PNG bytes, (h, w, c)) of the image at ``path``, as BasicSR's LMDB makers store it."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UserError(f'cannot read image {path}')
    ok, png = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, LMDB_PNG_LEVEL])
    if not ok:
        raise UserError(f'cannot encode {path}')
    return png.tobytes(), (*img.shape[:2], 1 if img.ndim == 2 else img.shape[2])


def lmdb_sizes(lmdb_path):
    """key -> (height, width) that a BasicSR LMDB's meta_info.txt lists; None if that is unreadable
    or disagrees with the number of items in the LMDB."""
    try:
        with open(osp.join(lmdb_path, 'meta_info.txt'), encoding='utf-8') as f:
            lines = [line.split() for line in f if line.strip()]
        sizes = {
            osp.splitext(name)[0]: tuple(int(v) for v in shape.strip('()').split(','))[:2] for name, shape, _ in lines
        }
        env = lmdb.open(lmdb_path, readonly=True, lock=False)
        try:
            items = env.stat()['entries']
        finally:
            env.close()
    except (OSError, ValueError, lmdb.Error):
        return None
    return sizes if items == len(lines) == len(sizes) else None


def lmdb_manifest(lmdb_path, images, sources):
    return manifest_entries(lmdb_path, {key: src for key, (_, src, _) in images.items()}, sources)


def lmdb_current(lmdb_path, images, sources):
    """Whether the LMDB at ``lmdb_path`` holds ``images`` (key -> (file, source, size)), made from the
    sources as they are now."""
    if read_manifest(lmdb_path) != lmdb_manifest(lmdb_path, images, sources):
        return False
    return lmdb_sizes(lmdb_path) == {key: size for key, (_, _, size) in images.items()}


def build_lmdb(lmdb_path, images, sources, workers, desc):
    """(Re)build the BasicSR LMDB of ``images`` (key -> (file to store, its source, size)), then its manifest."""
    keys = sorted(images)
    files = [images[key][0] for key in keys]
    map_size = lmdb_map_size(sum(osp.getsize(f) for f in files))

    def build(tmp):
        maker = LmdbMaker(tmp, map_size=map_size, compress_level=LMDB_PNG_LEVEL)
        for (png, shape), key in zip(pool_map(encode_for_lmdb, files, workers, desc), keys):
            maker.put(png, key, shape)
        maker.close()

    # no manifest while the LMDB is replaced: a run killed meanwhile leaves it to be rebuilt
    if osp.exists(lmdb_path + MANIFEST_SUFFIX):
        os.remove(lmdb_path + MANIFEST_SUFFIX)
    build_then_rename(lmdb_path, build)
    write_manifest(lmdb_path, lmdb_manifest(lmdb_path, images, sources))
