"""What the data preparation commands share: paired image lists, PNG conversion, complete-or-nothing outputs.

Outputs only ever appear complete: PNGs are written to a temporary file and
renamed, LMDBs and the demo set are built under a temporary name and renamed,
so an interrupted run can be started again and redoes only what is missing.
"""

import os
import shutil
from multiprocessing import Pool
from os import path as osp

import cv2
import torch
from basicsr.data.transforms import mod_crop
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from tqdm import tqdm

from ..project import SCALE
from ..utils.atomic import atomic_write
from ..utils.errors import UserError
from ..utils.image_formats import IMG_EXTENSIONS, bicubic_resize_uint8

# LMDB map space beyond 10x the images (bookkeeping pages of small sets)
LMDB_MAP_MARGIN = 64 * 2**20


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


def paired_images(first, second):
    """Sorted relative image paths, checked to be the same under both folders."""
    first_names, second_names = (
        sorted(scandir(require_dir(root), suffix=IMG_EXTENSIONS, recursive=True)) for root in (first, second)
    )
    if not first_names:
        raise UserError(f'no images found in {first}')
    unpaired = sorted(set(first_names).symmetric_difference(second_names))
    if unpaired:
        has, lacks = (first, second) if unpaired[0] in first_names else (second, first)
        raise UserError(f'{unpaired[0]} is in {has} but not in {lacks}')
    return first_names


def convert_image(job):
    """Read ``src``; crop its sides to multiples of SCALE and downscale it if asked; write PNG ``dst``."""
    src, dst, crop, downscale = job
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


def convert_images(jobs, workers, desc):
    """Run :func:`convert_image` on each ``(src, dst, crop, downscale)`` whose ``dst`` is missing."""
    todo = [job for job in jobs if not osp.exists(job[1])]
    print(f'{desc}: {len(jobs) - len(todo)} of {len(jobs)} images already written')
    if not todo:
        return
    with tqdm(total=len(todo), desc=desc, unit='image') as pbar:
        if workers == 1:
            for job in todo:
                convert_image(job)
                pbar.update()
        else:
            # one torch thread per process: the processes already use every core
            with Pool(min(workers, len(todo)), initializer=torch.set_num_threads, initargs=(1,)) as pool:
                for _ in pool.imap_unordered(convert_image, todo, chunksize=4):
                    pbar.update()


def build_lmdb(src_root, lmdb_path, rel_paths):
    """BasicSR LMDB of the images ``rel_paths`` under ``src_root``, keyed by path without extension."""
    if osp.exists(lmdb_path):
        print(f'{lmdb_path}: already complete')
        return
    map_size = lmdb_map_size(sum(osp.getsize(osp.join(src_root, p)) for p in rel_paths))
    keys = [osp.splitext(p)[0] for p in rel_paths]
    build_then_rename(lmdb_path, lambda tmp: make_lmdb_from_imgs(src_root, tmp, rel_paths, keys, map_size=map_size))
