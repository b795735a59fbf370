"""Blurry LR / sharp HR / sharp LR triplets for CNLRN (REDS layout).

The sharp LR image (``gt_lr``) is the target of the deblurring module's
pre-training; it is read from ``dataroot_gt_lr`` when given, else computed
from the HR image with MATLAB-compatible bicubic downscaling.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from os import path as osp
from typing import Any

import numpy as np
import torch
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data
from torchvision.transforms.functional import normalize

from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import image_files


@DATASET_REGISTRY.register()
class PairedBlurSRDataset(data.Dataset):
    """Return ``lq`` (blurry LR), ``gt`` (sharp HR, unless ``with_gt`` is false) and ``gt_lr`` (sharp LR, unless
    ``with_gt_lr`` is false).

    Tensors are RGB, CHW, float32 in [0, 1] (then normalised by ``mean`` /
    ``std`` when given); ``lq_path`` / ``gt_path`` are LMDB keys or file paths.

    On disk, images are found recursively (``000/00000000.png`` or
    ``000_00000000.png``); an LR image has the HR image's relative path, its
    stem passed through ``filename_tmpl`` (any image extension). LMDBs follow
    BasicSR's layout; their keys are read from ``meta_info.txt``.

    Args:
        opt (Mapping[str, Any]): the dataset's options, as BasicSR's
            ``PairedImageDataset``; keys:

            dataroot_gt (str): sharp HR root, an ``x.lmdb`` folder or an image folder.
            dataroot_lq (str): blurry LR root, same backend.
            dataroot_gt_lr (str, optional): sharp LR root, same backend.
            io_backend (dict): ``{type: lmdb}`` or ``{type: disk}``; other keys
                go to BasicSR's ``FileClient``.
            filename_tmpl (str): disk only; LR file stem from the HR one. Default '{}'.
            meta_info_file (str, optional): disk only; list of HR files (first
                token of each line, relative to dataroot_gt) to use instead of all of them.
            phase (str): 'train' crops and augments; otherwise whole frames.
            gt_size (int): training only; HR patch size, a multiple of ``scale``.
            use_hflip (bool): training augmentation by horizontal flips. Default false.
            use_rot (bool): training augmentation by vertical flips and
                transposition. Default false.
            scale (int): HR size over LR size. Default 4.
            mean (list[float], optional): per-channel mean subtracted from every
                tensor; give ``std`` with it.
            std (list[float], optional): per-channel divisor applied after ``mean``.
            seed (int): base of the per-sample augmentation seeds (set from
                manual_seed by the runner). Default 0.
            with_gt_lr (bool): return ``gt_lr``; false saves reading or computing
                it when nothing reads it (joint training). Default true.
            with_gt (bool): return ``gt``; false saves decoding the HR frame, the
                largest of the three, when nothing reads it (pre-training, whose
                target is ``gt_lr``); needs ``dataroot_gt_lr``. Default true.
    """

    def __init__(self, opt: Mapping[str, Any]):
        super().__init__()
        self.opt = opt
        self.scale = opt.get('scale', 4)
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.is_train = opt['phase'] == 'train'
        # joint training never looks at gt_lr, pre-training never at gt: skip what no one reads
        self.with_gt_lr = opt.get('with_gt_lr', True)
        self.with_gt = opt.get('with_gt', True)
        if not self.with_gt and opt.get('dataroot_gt_lr') is None:
            raise UserError(
                'dataset with_gt: false needs dataroot_gt_lr (the sharp LR frames are otherwise made from gt)'
            )
        # the runner sets seed to manual_seed and the sampler the epoch, so a resumed run replays
        # exactly the crops and flips of an uninterrupted one
        self.seed, self.epoch = opt.get('seed', 0), 0
        if self.is_train:
            gt_size = opt.get('gt_size')
            if not isinstance(gt_size, int) or gt_size <= 0 or gt_size % self.scale:
                raise UserError(f'dataset gt_size must be a positive multiple of scale={self.scale}, got {gt_size!r}')
        # client name -> root; the HR root ('gt') defines the samples
        self.roots = {'gt': opt['dataroot_gt'], 'lq': opt['dataroot_lq']}
        if opt.get('dataroot_gt_lr') is not None:
            self.roots['gt_lr'] = opt['dataroot_gt_lr']
        for root in self.roots.values():
            if not osp.isdir(root):
                raise UserError(f'dataset folder not found: {root}')

        self.io_backend_opt = dict(opt['io_backend'])
        self.backend = self.io_backend_opt.pop('type')
        if self.backend == 'lmdb':
            self.keys = self._lmdb_keys()
            self.paths = {client: self.keys for client in self.roots}
            self.io_backend_opt.update(db_paths=list(self.roots.values()), client_keys=list(self.roots))
        elif self.backend == 'disk':
            self.keys, self.paths = self._disk_paths(opt.get('filename_tmpl', '{}'), opt.get('meta_info_file'))
        else:
            raise UserError(f"dataset io_backend type must be 'lmdb' or 'disk', got {self.backend!r}")
        # what __getitem__ decodes; the HR root still defines the samples
        wanted = {'gt': self.with_gt, 'lq': True, 'gt_lr': self.with_gt_lr}
        self.read_clients = [client for client in self.roots if wanted[client]]
        # opened on first use, so that each data loader worker has its own
        self.file_client = None

    def _lmdb_keys(self) -> list[str]:
        """Sorted keys, checked to be the same in every LMDB."""
        key_sets = {}
        for client, root in self.roots.items():
            for required in ('data.mdb', 'meta_info.txt'):
                if not osp.isfile(osp.join(root, required)):
                    raise UserError(f'not a BasicSR LMDB folder (no {required}): {root}')
            meta_info = osp.join(root, 'meta_info.txt')
            with open(meta_info) as f:
                key_sets[client] = {osp.splitext(line.split()[0])[0] for line in f if line.strip()}
            if not key_sets[client]:
                raise UserError(f'no images listed in {meta_info}')
        for client in self._lr_clients():
            self._check_pairs(client, key_sets['gt'], key_sets[client], check_extra=True)
        return sorted(key_sets['gt'])

    def _disk_paths(self, filename_tmpl: str, meta_info_file: str | None) -> tuple[list[str], dict[str, list[str]]]:
        """Sorted HR keys (relative paths without extension) and each client's file paths."""
        files = {}
        for client, root in self.roots.items():
            files[client] = {osp.splitext(rel)[0]: osp.join(root, rel) for rel in image_files(root)}
            if not files[client]:
                raise UserError(f'no images found in {root}')
        if meta_info_file is None:
            keys = sorted(files['gt'])
        else:
            if not osp.isfile(meta_info_file):
                raise UserError(f'meta_info_file not found: {meta_info_file}')
            with open(meta_info_file) as f:
                keys = [osp.splitext(line.split()[0])[0] for line in f if line.strip()]
            for key in keys:
                if key not in files['gt']:
                    raise UserError(f'image {key} listed in {meta_info_file} is not in {self.roots["gt"]}')

        def lr_key(key: str) -> str:
            folder, stem = osp.split(key)
            return osp.join(folder, filename_tmpl.format(stem))

        names = [lr_key(k) for k in keys]
        paths = {'gt': [files['gt'][k] for k in keys]}
        for client in self._lr_clients():
            # with a meta_info_file, images beyond the listed ones are expected
            self._check_pairs(client, set(names), set(files[client]), check_extra=meta_info_file is None)
            paths[client] = [files[client][name] for name in names]
        return keys, paths

    def _lr_clients(self) -> list[str]:
        return [client for client in self.roots if client != 'gt']

    def _check_pairs(self, client: str, expected: set[str], available: set[str], check_extra: bool) -> None:
        gt_root, root = self.roots['gt'], self.roots[client]
        missing = sorted(expected - available)
        if missing:
            raise UserError(f'image {missing[0]} is in {gt_root} but not in {root}')
        extra = sorted(available - expected) if check_extra else []
        if extra:
            raise UserError(f'image {extra[0]} is in {root} but not in {gt_root}')

    def set_epoch(self, epoch: int) -> None:
        """The epoch of plain-int indices: augmentation randomness derives from (seed, epoch, position)."""
        self.epoch = epoch

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor | str]:
        """The sample at ``index``, or at ``(epoch, index)`` as the training sampler passes it.

        Args:
            index (int | tuple[int, int]): a position, or (epoch, position): data loader workers that persist
                across epochs keep their own copy of the data set, which :meth:`set_epoch` never reaches.
        """
        if self.file_client is None:
            self.file_client = FileClient(self.backend, **self.io_backend_opt)
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        # the sampler may pass positions of an enlarged epoch (dataset_enlarge_ratio); each
        # position gets its own crop and flips, the same ones whenever it is replayed
        rng = random.Random(f'{self.seed}:{epoch}:{index}')
        index %= len(self.keys)
        key = self.keys[index]
        imgs = {client: self._read(client, self.paths[client][index]) for client in self.read_clients}
        self._check_sizes(key, imgs)
        if self.is_train:
            imgs = self._random_crop(key, imgs, rng)
        if 'gt_lr' not in imgs and self.with_gt_lr:
            imgs['gt_lr'] = np.clip(imresize(imgs['gt'], 1 / self.scale), 0, 1)
        if self.is_train:
            imgs = self._augment(imgs, rng)

        tensors = dict(zip(imgs, img2tensor(list(imgs.values()), bgr2rgb=True, float32=True)))
        if self.mean is not None or self.std is not None:
            for tensor in tensors.values():
                normalize(tensor, self.mean, self.std, inplace=True)
        return dict(tensors, lq_path=self.paths['lq'][index], gt_path=self.paths['gt'][index])

    def _read(self, client: str, path: str) -> np.ndarray:
        """HWC BGR float32 image in [0, 1]; ``path`` is a file path or an LMDB key."""
        content = self.file_client.get(path, client)
        # imfrombytes returns None for bytes OpenCV cannot decode
        img = imfrombytes(content) if content else None
        if img is None:
            where = f'{path} in {self.roots[client]}' if self.backend == 'lmdb' else path
            raise UserError(f'cannot read image {where}')
        return img.astype(np.float32) / 255.0

    def _check_sizes(self, key: str, imgs: dict[str, np.ndarray]) -> None:
        (h, w), s = imgs['lq'].shape[:2], self.scale
        if 'gt' in imgs and imgs['gt'].shape[:2] != (h * s, w * s):
            raise UserError(f'image {key}: HR size {imgs["gt"].shape[:2]} is not {s}x the LR size {(h, w)}')
        if 'gt_lr' in imgs and imgs['gt_lr'].shape[:2] != (h, w):
            raise UserError(f'image {key}: sharp LR size {imgs["gt_lr"].shape[:2]} differs from the LR size {(h, w)}')

    def _augment(self, imgs: dict[str, np.ndarray], rng: random.Random) -> dict[str, np.ndarray]:
        """The same flips and transposition for every image (as BasicSR's ``augment``)."""
        hflip = self.opt.get('use_hflip', False) and rng.random() < 0.5
        vflip = self.opt.get('use_rot', False) and rng.random() < 0.5
        transpose = self.opt.get('use_rot', False) and rng.random() < 0.5
        out = {}
        for client, img in imgs.items():
            if hflip:
                img = img[:, ::-1]
            if vflip:
                img = img[::-1]
            if transpose:
                img = img.transpose(1, 0, 2)
            out[client] = np.ascontiguousarray(img)
        return out

    def _random_crop(self, key: str, imgs: dict[str, np.ndarray], rng: random.Random) -> dict[str, np.ndarray]:
        """Crop all images at the same place: LR patches gt_size // scale, HR patch gt_size."""
        gt_size, s = self.opt['gt_size'], self.scale
        size = gt_size // s
        h, w = imgs['lq'].shape[:2]
        if h < size or w < size:
            raise UserError(
                f'image {key}: LR size {(h, w)} is smaller than the training patch {(size, size)} '
                f'(gt_size {gt_size} / scale {s})'
            )
        top, left = rng.randint(0, h - size), rng.randint(0, w - size)
        crops = {client: img[top : top + size, left : left + size] for client, img in imgs.items() if client != 'gt'}
        if 'gt' in imgs:
            crops['gt'] = imgs['gt'][top * s : (top + size) * s, left * s : (left + size) * s]
        return crops

    def __len__(self) -> int:
        return len(self.keys)
