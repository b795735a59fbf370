"""Where the perceptual loss finds torchvision's VGG19 weights, and one line when they are missing.

basicsr's ``VGGFeatureExtractor`` reads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (relative to
the current directory) when it exists, otherwise asks torchvision, which looks in torch's hub cache and
downloads there when the file is missing: offline, a traceback deep inside urllib. ESRGAN-style recipes
(``options/baselines/esrgan.yml``, ``cnlrn_gan.yml``) need the file, downloaded once; the option check
(:func:`cnlrn_arch.options.check.check_options`) asks for it before training starts.
"""

import os
from os import path as osp

import torch
from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH

from cnlrn_base.errors import UserError

VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'


def vgg19_weight_paths() -> list[str]:
    """The files basicsr and torchvision read VGG19's ImageNet weights from, in the order they look."""
    return [VGG_PRETRAIN_PATH, osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(VGG19_URL))]


def vgg19_weights() -> str | None:
    """The VGG19 weights file the perceptual loss would read, or None when there is none."""
    return next((p for p in vgg19_weight_paths() if osp.isfile(p)), None)


def missing_vgg19_message() -> str:
    """One line: which file the perceptual loss needs, where to put it, and where to get it."""
    local, cache = vgg19_weight_paths()
    return (
        f"the perceptual loss needs torchvision's VGG19 weights, in neither {local} nor {cache}: "
        f'download {VGG19_URL} to one of them once (e.g. mkdir -p {os.path.dirname(local)} && '
        f'curl -L -o {local} {VGG19_URL})'
    )


def require_vgg19_weights() -> None:
    """Raise a UserError naming the file unless VGG19's weights are on disk.

    Raises:
        UserError: the weights are in neither place :func:`vgg19_weight_paths` lists.
    """
    if vgg19_weights() is None:
        raise UserError(missing_vgg19_message())
