"""PSNR cost of bfloat16 autocast: the demo checkpoint on the demo validation images, fp32 vs bf16."""

from os import path as osp

import torch
from basicsr.utils import tensor2img

from cnlrn_arch.inference.network import load_network
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.reports.scores import read_val, score, val_inputs
from cnlrn_base.project import DEMO_CHECKPOINT, DEMO_VAL


def restore(net, inputs, settings):
    """Network inputs -> uint8 BGR x4 images, computed in the precision of ``settings``."""
    with torch.inference_mode(), settings.autocast():
        return [tensor2img(net(x).float()) for x in inputs]


def bf16_psnr_change(val_dir=DEMO_VAL, weights=DEMO_CHECKPOINT):
    """{'fp32': (psnr, ssim), 'bf16': (psnr, ssim), 'images': n}, or None without demo data."""
    if not (osp.isdir(val_dir) and osp.isfile(weights)):
        return None
    float32 = InferenceSettings()  # on the CPU
    net = load_network(weights, settings=float32).module  # the configuration stored in the checkpoint
    _, sharp, blurry, _ = read_val(val_dir)
    inputs = val_inputs(blurry)
    return {
        'images': len(sharp),
        'fp32': score(restore(net, inputs, float32), sharp),
        'bf16': score(restore(net, inputs, InferenceSettings(precision='bf16')), sharp),
    }
