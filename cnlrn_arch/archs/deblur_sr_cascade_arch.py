"""Two-network cascades of the paper's Table 1 (SRN+RCAN, SRN+RRDBNet, ...).

A deblurring module outputs a sharp LR image; any registered SR network
upsamples it. Both are trained jointly, like CNLRN, but they meet at an
image instead of at features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur


@ARCH_REGISTRY.register()
class DeblurSRCascade(CNLRNPreDeblur):
    """``SRNet(DeblurNet(x))`` with an image between the two.

    The deblurring module is an SRN-style encoder-decoder
    (:class:`CNLRNPreDeblur`), whose pre-trained weights load through
    ``path: pretrain_network_deblur``.

    Args:
        sr_opt (Mapping[str, Any]): the SR network as in an option file, e.g.
            ``{type: RCAN, num_in_ch: 3, num_out_ch: 3, upscale: 4}``; any
            registered arch.
        n_colors (int): image channels of the deblurring module.
        n_feats (int): as in :class:`CNLRNPreDeblur`.
        n_deblur_blocks (int): as in :class:`CNLRNPreDeblur`.
    """

    def __init__(self, sr_opt: Mapping[str, Any], n_colors: int = 3, n_feats: int = 64, n_deblur_blocks: int = 20):
        super().__init__(n_colors, n_feats, n_deblur_blocks)
        sr_args = dict(sr_opt)
        sr_type = sr_args.pop('type', None)
        if sr_type not in ARCH_REGISTRY:
            raise ValueError(f'sr_opt: type {sr_type!r} is not a registered network')
        self.SRNet = ARCH_REGISTRY.get(sr_type)(**sr_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SRNet(super().forward(x))
