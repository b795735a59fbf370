"""Non-local residual network: CNLRN's progressive x4 super-resolution module.

Residual channel attention blocks (RCAN, Zhang et al. 2018) interleaved with
global non-local attention, grouped into non-local residual groups (NLRGs).
Reconstruction and a first refinement run at the input resolution, a second
refinement at 2x, and the tail at 4x.

Features flow channels-last: the non-local blocks cut them into patches
whose pixels are then whole channel vectors, and oneDNN convolutions read
that layout without reordering.
"""

import torch
from torch import nn

from .arch_util import add_residual, records_graph, run_in_strips
from .nonlocal_attention import NonLocalBlock

# Input rows beyond a strip that local layers read: conv-ReLU-conv of an RCAB (2);
# the last x2 upsampler's conv (1) and the tail's two convs at 2x the rows (1).
RCAB_HALO = 2
UPSAMPLE_TAIL_HALO = 2


def conv3x3(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class CALayer(nn.Module):
    """Channel attention: scale each channel by a gate computed from its mean.

    Without autograd the input (a block's fresh conv output) is scaled in place.
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        gate = self.conv_du(self.avg_pool(x))
        if records_graph(x, gate):
            return x * gate
        return x.mul_(gate)


class RCAB(nn.Module):
    """Residual channel attention block: x + CA(conv(ReLU(conv(x))))."""

    def __init__(self, n_feats):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats), CALayer(n_feats)
        )

    def forward(self, x):
        convs, channel_attention = self.body[:3], self.body[3]
        return add_residual(channel_attention(run_in_strips(convs, x, RCAB_HALO)), x)


class SubGroup(nn.Module):
    """A non-local block (None: left out, an ablation) followed by residual channel attention blocks."""

    def __init__(self, n_feats, n_rcabs, patch_sizes, attn_impl):
        super().__init__()
        self.nonlocal_block = nn.Identity() if patch_sizes is None else NonLocalBlock(n_feats, patch_sizes, attn_impl)
        self.rcab_body = nn.Sequential(*[RCAB(n_feats) for _ in range(n_rcabs)], conv3x3(n_feats, n_feats))

    def forward(self, x):
        # layer by layer, so the non-local block's output is freed once the
        # first RCAB has consumed it (a Sequential call would pin it to the end)
        y = self.nonlocal_block(x)
        for layer in self.rcab_body:
            y = layer(y)
        return add_residual(y, x)


class NLRG(nn.Module):
    """Non-local residual group: sub-groups and a conv with a long skip."""

    def __init__(self, n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl):
        super().__init__()
        self.body = nn.Sequential(
            *[SubGroup(n_feats, n_rcabs, patch_sizes, attn_impl) for _ in range(n_subgroups)], conv3x3(n_feats, n_feats)
        )

    def forward(self, x):
        return add_residual(self.body(x), x)


def nlrg_stage(n_groups, n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl):
    """``n_groups`` NLRGs and a closing conv; the caller adds the skip."""
    return nn.Sequential(
        *[NLRG(n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl) for _ in range(n_groups)],
        conv3x3(n_feats, n_feats),
    )


def upsampler_x2(n_feats):
    return nn.Sequential(conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2))


class NonLocalResidualNet(nn.Module):
    """Features at LR -> image at 4x LR, upsampling progressively (x2, x2).

    Args:
        n_colors: channels of the output image.
        n_feats: feature channels throughout.
        n_nlrgs_body: NLRGs of the reconstruction stage (LR).
        n_nlrgs_up1: NLRGs refining before the first x2 upsampler (LR).
        n_nlrgs_up2: NLRGs refining before the second x2 upsampler (2x).
        n_subgroups: sub-groups per NLRG.
        n_rcabs: RCABs per sub-group.
        patch_sizes: patch size of each attention head; None leaves the
            non-local blocks out (the paper's baseline1).
        attn_impl: 'sdpa' or 'naive'; see :mod:`.nonlocal_attention`.
        upsampling: 'progressive' (x2, refine, x2) or 'post' (every group at
            LR, then both x2 upsamplers in a row: the paper's baseline2).
    """

    def __init__(
        self,
        n_colors,
        n_feats,
        n_nlrgs_body,
        n_nlrgs_up1,
        n_nlrgs_up2,
        n_subgroups,
        n_rcabs,
        patch_sizes,
        attn_impl,
        upsampling='progressive',
    ):
        super().__init__()
        self.upsampling = upsampling
        group_args = (n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl)
        self.body = nlrg_stage(n_nlrgs_body, *group_args)
        self.upsample_body_1 = nlrg_stage(n_nlrgs_up1, *group_args)
        self.upsampler_1 = upsampler_x2(n_feats)
        self.upsample_body_2 = nlrg_stage(n_nlrgs_up2, *group_args)
        self.upsampler_2 = upsampler_x2(n_feats)
        self.tail = nn.Sequential(conv3x3(n_feats, n_feats), conv3x3(n_feats, n_colors))

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        x = add_residual(self.body(x), x)
        if self.upsampling == 'post':
            x = add_residual(self.upsample_body_1(x), x)
            x = self.upsampler_1(add_residual(self.upsample_body_2(x), x))
        else:
            x = self.upsampler_1(add_residual(self.upsample_body_1(x), x))
            x = add_residual(self.upsample_body_2(x), x)
        # the 4x maps, 236 MB each for a REDS frame, only ever exist for a strip
        return run_in_strips(lambda strip: self.tail(self.upsampler_2(strip)), x, UPSAMPLE_TAIL_HALO, scale=2)
