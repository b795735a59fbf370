"""PSNR cost of bfloat16 autocast: the demo checkpoint on the demo validation images, fp32 vs bf16."""
from os import path as osp

import numpy as np
import torch

from ..inference.network import load_network
from ..tools.demo import DEFAULT_CHECKPOINT, OPTIONS, VAL
from ..tools.demo_report import read_val, score


def restore(net, blurry, dtype):
    """uint8 BGR LR images -> uint8 BGR x4 images, autocast to ``dtype`` (None: float32)."""
    restored = []
    for img in blurry:
        x = torch.from_numpy(img[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
        with torch.inference_mode(), torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
            y = net(x)[0].float().clamp(0, 1)
        restored.append((y.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8))
    return restored


def bf16_psnr_change(val_dir=VAL, weights=DEFAULT_CHECKPOINT):
    """{'fp32': (psnr, ssim), 'bf16': (psnr, ssim), 'images': n}, or None without demo data."""
    if not (osp.isdir(val_dir) and osp.isfile(weights)):
        return None
    net = load_network(weights, osp.join(OPTIONS, 'joint.yml'))
    _, sharp, blurry, _ = read_val(val_dir)
    return {'images': len(sharp), 'fp32': score(restore(net, blurry, None), sharp),
            'bf16': score(restore(net, blurry, torch.bfloat16), sharp)}
