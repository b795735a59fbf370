"""Non-local residual network: CNLRN's progressive x4 super-resolution module.

Residual channel attention blocks (RCAN, Zhang et al. 2018) interleaved with
global non-local attention, grouped into non-local residual groups (NLRGs).
Reconstruction and a first refinement run at the input resolution, a second
refinement at 2x, and the tail at 4x.
"""
from torch import nn

from .nonlocal_attention import NonLocalBlock


def conv3x3(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class CALayer(nn.Module):
    """Channel attention: scale each channel by a gate computed from its mean."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block: x + CA(conv(ReLU(conv(x))))."""

    def __init__(self, n_feats):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats),
                                  CALayer(n_feats))

    def forward(self, x):
        return x + self.body(x)


class SubGroup(nn.Module):
    """A non-local block (None: left out, an ablation) followed by residual channel attention blocks."""

    def __init__(self, n_feats, n_rcabs, patch_sizes, attn_impl):
        super().__init__()
        self.nonlocal_block = nn.Identity() if patch_sizes is None else NonLocalBlock(n_feats, patch_sizes, attn_impl)
        self.rcab_body = nn.Sequential(*[RCAB(n_feats) for _ in range(n_rcabs)], conv3x3(n_feats, n_feats))

    def forward(self, x):
        return x + self.rcab_body(self.nonlocal_block(x))


class NLRG(nn.Module):
    """Non-local residual group: sub-groups and a conv with a long skip."""

    def __init__(self, n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl):
        super().__init__()
        self.body = nn.Sequential(
            *[SubGroup(n_feats, n_rcabs, patch_sizes, attn_impl) for _ in range(n_subgroups)],
            conv3x3(n_feats, n_feats))

    def forward(self, x):
        return x + self.body(x)


def nlrg_stage(n_groups, n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl):
    """``n_groups`` NLRGs and a closing conv; the caller adds the skip."""
    return nn.Sequential(
        *[NLRG(n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl) for _ in range(n_groups)],
        conv3x3(n_feats, n_feats))


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

    def __init__(self, n_colors, n_feats, n_nlrgs_body, n_nlrgs_up1, n_nlrgs_up2, n_subgroups, n_rcabs,
                 patch_sizes, attn_impl, upsampling='progressive'):
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
        x = x + self.body(x)
        if self.upsampling == 'post':
            x = x + self.upsample_body_1(x)
            x = x + self.upsample_body_2(x)
            return self.tail(self.upsampler_2(self.upsampler_1(x)))
        x = self.upsampler_1(x + self.upsample_body_1(x))
        x = self.upsampler_2(x + self.upsample_body_2(x))
        return self.tail(x)
