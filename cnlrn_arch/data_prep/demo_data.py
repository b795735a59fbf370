"""A small REDS-like set made from the photographs shipped inside scikit-image (``cnlrn make-demo-data``).

Training crops and validation tiles of sharp photos are blurred with random,
spatially varying camera-shake kernels plus mild noise, then downscaled x4
with MATLAB-compatible bicubic, as REDS' blurry LR frames were. Nothing is
downloaded, and the same seed gives byte-identical files.

Output under OUT (clip = photo, frame = crop, as in REDS):
  train_sharp.lmdb, train_blur_bicubic_X4.lmdb, train_sharp_bicubic_X4.lmdb
      BasicSR LMDBs of 128x128 HR, blurry 32x32 LR and sharp 32x32 LR, keys <clip>/<frame>
  val/{sharp,blur_bicubic_X4,sharp_bicubic_X4}/<clip>_<frame>.png
      256x256 HR tiles of photos never used for training, and their LR
  README.txt  seed, counts and the bicubic baseline PSNR; written last
"""

import os
import time
from os import path as osp

import cv2
import numpy as np
import skimage.data
import torch
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from cnlrn_arch.data.motion_blur import blur, shake_kernels
from cnlrn_arch.data_prep.files import LMDB_PNG_LEVEL, build_then_rename, lmdb_map_size
from cnlrn_base.command_defaults import DEMO_CROPS_PER_PHOTO, DEMO_SEED, DEMO_TRAIN_PHOTOS
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.project import SCALE, TRIPLE_SETS

VAL_PHOTOS = ('astronaut', 'coffee', 'chelsea')
TRAIN_SIZE, VAL_SIZE = 128, 256  # HR sides, multiples of 16
MIN_ZOOM = 0.4  # training crops see their photo downscaled by a random factor in [MIN_ZOOM, 1]
MIN_STD = 8  # a training crop flatter than this (in 0-255) is drawn again, up to 10 times
# path length range in HR pixels, tuned so that bicubic x4 of the blurry validation LR
# scores about 23.5 dB PSNR against the sharp HR, as on REDS Val300 (23.85 dB)
BLUR_LENGTH = (4, 24)
NOISE_SIGMA = (1 / 255, 2 / 255)
HEADER = 'CNLRN demo data'


def load_photo(name):
    """BGR uint8 photo from skimage.data."""
    img = skimage.data.stereo_motorcycle()[0] if name == 'motorcycle' else getattr(skimage.data, name)()
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)


def degrade(photo, top, left, size, rng):
    """(sharp HR, blurry LR, sharp LR) uint8 of the ``size`` square at ``top``, ``left`` of ``photo``.

    The blur sees the photo around the square (reflected only past the
    photo's edges), so crops get no artificial borders.
    """
    kernels = shake_kernels(rng, BLUR_LENGTH)
    m = max(k.shape[0] for k in kernels) // 2
    padded = cv2.copyMakeBorder(photo, m, m, m, m, cv2.BORDER_REFLECT_101)
    window = padded[top : top + size + 2 * m, left : left + size + 2 * m]
    blurry = blur(window.astype(np.float32) / 255, kernels, rng)[m : m + size, m : m + size]
    blurry += rng.normal(0, rng.uniform(*NOISE_SIGMA), blurry.shape)
    # quantised before downscaling, as REDS' blurry HR frames were
    blurry = np.clip(np.round(blurry * 255), 0, 255).astype(np.uint8)
    sharp = photo[top : top + size, left : left + size]
    return sharp, bicubic_resize_uint8(blurry, 1 / SCALE), bicubic_resize_uint8(sharp, 1 / SCALE)


def train_crops(photo, n, rng):
    """``n`` triples of :func:`degrade` at random places and zooms of ``photo``."""
    for _ in range(n):
        zoom = rng.uniform(max(MIN_ZOOM, TRAIN_SIZE / min(photo.shape[:2])), 1)
        scaled = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        for _ in range(10):  # skip flat crops (black sky, background)
            top, left = (int(rng.integers(0, side - TRAIN_SIZE + 1)) for side in scaled.shape[:2])
            if scaled[top : top + TRAIN_SIZE, left : left + TRAIN_SIZE].std() >= MIN_STD:
                break
        yield degrade(scaled, top, left, TRAIN_SIZE, rng)


def val_tiles(photo, rng):
    """Triples of :func:`degrade` for the central VAL_SIZE tiles of ``photo``, as many as fit."""
    h, w = photo.shape[:2]
    rows, cols = h // VAL_SIZE, w // VAL_SIZE
    top, left = (h - rows * VAL_SIZE) // 2, (w - cols * VAL_SIZE) // 2
    for r in range(rows):
        for c in range(cols):
            yield degrade(photo, top + r * VAL_SIZE, left + c * VAL_SIZE, VAL_SIZE, rng)


def cut(photos, crops, pbar):
    """(clip, frame, triple) for each triple that ``crops(photo)`` yields, photo after photo."""
    items = []
    for clip, name in enumerate(photos):
        items += [(clip, frame, triple) for frame, triple in enumerate(crops(load_photo(name)))]
        pbar.update()
    return items


def png(img):
    return cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, LMDB_PNG_LEVEL])[1].tobytes()


def write_lmdb(path, keys, imgs):
    data = [png(img) for img in imgs]
    maker = LmdbMaker(path, map_size=lmdb_map_size(sum(map(len, data))), compress_level=LMDB_PNG_LEVEL)
    for key, img, img_bytes in zip(keys, imgs, data):
        maker.put(img_bytes, key, img.shape)
    maker.close()


def bicubic_psnr(sharp, blurry_lr):
    """PSNR of MATLAB bicubic x SCALE of ``blurry_lr`` against ``sharp``, the baseline REDS papers quote."""
    up = bicubic_resize_uint8(blurry_lr, SCALE)
    return calculate_psnr(up, sharp, crop_border=SCALE)


def random_streams(seed=DEMO_SEED):
    """The random generators of the training crops and of the held-out tiles of the set made with ``seed``."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))


def held_out_inputs(seed=DEMO_SEED):
    """(name, blurry LR of its first held-out tile) of each of VAL_PHOTOS, as the set made with ``seed`` holds them."""
    val_rng = random_streams(seed)[1]
    for name in VAL_PHOTOS:
        tiles = list(val_tiles(load_photo(name), val_rng))  # all of them: the next photograph's draws follow
        yield name, tiles[0][1]


def make(out, seed, crops_per_photo):
    """Write the data set and its README.txt into the new folder ``out``; return the README text."""
    os.makedirs(out)
    train_rng, val_rng = random_streams(seed)
    with tqdm(total=len(DEMO_TRAIN_PHOTOS) + len(VAL_PHOTOS), desc='demo data', unit='photo') as pbar:
        train = cut(DEMO_TRAIN_PHOTOS, lambda photo: train_crops(photo, crops_per_photo, train_rng), pbar)
        val = cut(VAL_PHOTOS, lambda photo: val_tiles(photo, val_rng), pbar)

    for i, suffix in enumerate(TRIPLE_SETS):
        write_lmdb(
            osp.join(out, f'train_{suffix}.lmdb'),
            [f'{c:03d}/{f:08d}' for c, f, _ in train],
            [t[i] for _, _, t in train],
        )
        os.makedirs(osp.join(out, 'val', suffix))
        for clip, frame, t in val:
            with open(osp.join(out, 'val', suffix, f'{clip:03d}_{frame:08d}.png'), 'wb') as f:
                f.write(png(t[i]))

    psnr = np.mean([bicubic_psnr(t[0], t[1]) for _, _, t in val])
    readme = '\n'.join(
        [
            _header(seed, crops_per_photo),
            "Made by 'cnlrn make-demo-data' from photographs shipped with scikit-image; see its --help.",
            f'train: {len(train)} pairs, HR {TRAIN_SIZE}x{TRAIN_SIZE}, LR x1/{SCALE}; clips: '
            + ', '.join(f'{c:03d} {n}' for c, n in enumerate(DEMO_TRAIN_PHOTOS)),
            f'val: {len(val)} pairs, HR {VAL_SIZE}x{VAL_SIZE}, LR x1/{SCALE}; clips: '
            + ', '.join(f'{c:03d} {n}' for c, n in enumerate(VAL_PHOTOS)),
            f'bicubic x{SCALE} of the blurry val LR against the sharp HR: {psnr:.2f} dB PSNR '
            f'(RGB, crop border {SCALE}; REDS Val300: 23.85 dB)',
            '',
        ]
    )
    # written last: its first line marks the set as complete
    with open(osp.join(out, 'README.txt'), 'w', encoding='utf-8') as f:
        f.write(readme)
    return readme


def _header(seed, crops_per_photo):
    return f'{HEADER}: seed {seed}, crops-per-photo {crops_per_photo}'


def _existing_header(out):
    """First line of ``out``'s README if ``out`` is a finished demo set; None if ``out`` is missing or empty."""
    if not osp.exists(out) or (osp.isdir(out) and not os.listdir(out)):
        return None
    readme = osp.join(out, 'README.txt')
    if osp.isfile(readme):
        with open(readme, encoding='utf-8') as f:
            line = f.readline().rstrip('\n')
        if line.startswith(HEADER):
            return line
    raise UserError(f'{out} exists and is not a demo data folder; choose another --out')


def make_demo_data(out, seed=DEMO_SEED, crops_per_photo=DEMO_CROPS_PER_PHOTO, force=False):
    """Make the demo set in ``out`` unless it already holds one made with the same settings (or ``force``)."""
    existing = _existing_header(out)
    if existing == _header(seed, crops_per_photo) and not force:
        print(f'{out} already holds this demo data ({existing}); --force remakes it')
        return
    if existing:
        print(f'{out} holds demo data made with other settings ({existing}): remaking it')
    start = time.perf_counter()
    # built beside OUT and renamed once complete, so OUT never holds a partial set
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # imresize works on tiny tensors, where threads only add overhead
    try:
        readme = build_then_rename(out, lambda tmp: make(tmp, seed, crops_per_photo))
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their threads
    print(readme, end='')
    print(f'demo data written to {out} in {time.perf_counter() - start:.1f} s')
