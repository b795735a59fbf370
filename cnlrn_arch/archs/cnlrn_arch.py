"""CNLRN: cascaded non-local residual network (Bai et al., CVPRW 2021).

Blurry LR image -> :class:`DeblurNet` (sharp LR features) ->
:class:`NonLocalResidualNet` (x4 image). Attribute names (``DeblurNet``,
``SRNet``) match the authors' release, whose weights load strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from cnlrn_arch.archs.arch_util import check_positive, pad_to_multiple
from cnlrn_arch.archs.deblur_arch import DEBLUR_MULTIPLE, DeblurNet
from cnlrn_arch.archs.nlrn_arch import NonLocalResidualNet
from cnlrn_arch.archs.nonlocal_attention import ATTN_IMPLS

UPSAMPLINGS = ('progressive', 'post')


@ARCH_REGISTRY.register()
class CNLRN(nn.Module):
    """Restore a sharp 4x HR image from a blurry LR one.

    Any input size works: sides that are not multiples of 4 (and of every
    patch size) are padded (see :func:`~.arch_util.pad_to_multiple`) and the
    output is cropped to 4H x 4W.

    The defaults give the released network; ``with_deblur``,
    ``nonlocal_block`` and ``upsampling`` select the paper's ablations.

    Args:
        n_colors (int): image channels (3 for RGB in [0, 1]).
        n_deblur_blocks (int): residual blocks in the deblurring bottleneck.
        n_nlrgs_body (int): non-local residual groups of the LR reconstruction stage.
        n_nlrgs_up1 (int): groups refining at LR before the first x2 upsampling.
        n_nlrgs_up2 (int): groups refining at 2x before the second x2 upsampling.
        n_subgroups (int): sub-groups (non-local block + RCABs) per group.
        n_rcabs (int): residual channel attention blocks per sub-group.
        n_feats (int): feature channels; divisible by the number of attention
            heads and at least 16 (channel attention reduces by 16).
        nonlocal_psize (Sequence[int]): patch size of each attention head; its
            length is the number of heads.
        scale (int): upscaling factor; the architecture is built for 4 only.
        attn_impl (str): 'sdpa' (fused ``scaled_dot_product_attention``,
            default) or 'naive' (explicit score matrix, as released; for
            comparisons).
        with_deblur (bool): False replaces the deblurring module by one 3x3
            convolution from the image to features (Table 4).
        nonlocal_block (bool): False leaves out every non-local block (baseline1).
        upsampling (str): 'progressive' is the released x2, refine, x2; 'post'
            runs every group at LR, then upsamples x4 at the end (baseline2).
    """

    def __init__(
        self,
        n_colors: int = 3,
        n_deblur_blocks: int = 20,
        n_nlrgs_body: int = 6,
        n_nlrgs_up1: int = 2,
        n_nlrgs_up2: int = 2,
        n_subgroups: int = 2,
        n_rcabs: int = 4,
        n_feats: int = 64,
        nonlocal_psize: Sequence[int] = (4, 4, 4, 4),
        scale: int = 4,
        attn_impl: str = 'sdpa',
        with_deblur: bool = True,
        nonlocal_block: bool = True,
        upsampling: str = 'progressive',
    ):
        super().__init__()
        check_positive(
            n_colors=n_colors,
            n_deblur_blocks=n_deblur_blocks,
            n_nlrgs_body=n_nlrgs_body,
            n_nlrgs_up1=n_nlrgs_up1,
            n_nlrgs_up2=n_nlrgs_up2,
            n_subgroups=n_subgroups,
            n_rcabs=n_rcabs,
            n_feats=n_feats,
        )
        if scale != 4:
            raise ValueError(f'CNLRN upsamples x4 only (two x2 stages), got scale={scale!r}')
        patch_sizes = tuple(nonlocal_psize)
        if not patch_sizes:
            raise ValueError('nonlocal_psize needs at least one patch size (one per attention head)')
        check_positive(**{f'nonlocal_psize[{i}]': p for i, p in enumerate(patch_sizes)})
        if n_feats % len(patch_sizes):
            raise ValueError(
                f'n_feats={n_feats} must be divisible by the number of attention heads '
                f'len(nonlocal_psize)={len(patch_sizes)}'
            )
        if n_feats < 16:
            raise ValueError(f'n_feats={n_feats} must be at least 16 (channel attention reduces channels by 16)')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f'upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}')
        self.scale = scale
        self.size_multiple = math.lcm(DEBLUR_MULTIPLE if with_deblur else 1, *(patch_sizes if nonlocal_block else ()))
        if with_deblur:
            self.DeblurNet = DeblurNet(n_colors, n_feats, n_deblur_blocks)
        else:
            self.head = nn.Conv2d(n_colors, n_feats, 3, padding=1)
        self.SRNet = NonLocalResidualNet(
            n_colors,
            n_feats,
            n_nlrgs_body,
            n_nlrgs_up1,
            n_nlrgs_up2,
            n_subgroups,
            n_rcabs,
            patch_sizes if nonlocal_block else None,
            attn_impl,
            upsampling,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_colors, H, W) blurry LR image -> (N, n_colors, 4H, 4W) sharp HR image."""
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        features = self.DeblurNet(x) if hasattr(self, 'DeblurNet') else self.head(x)
        out = self.SRNet(features)
        return out[..., : height * self.scale, : width * self.scale]
