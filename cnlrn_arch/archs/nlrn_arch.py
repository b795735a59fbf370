"""Non-local residual network: CNLRN's progressive x4 super-resolution module.

Residual channel attention blocks (RCAN, Zhang et al. 2018) interleaved with
global non-local attention, grouped into non-local residual groups (NLRGs).
Reconstruction and a first refinement run at the input resolution, a second
refinement at 2x, and the tail at 4x.

Features flow channels-last: the non-local blocks cut them into patches
whose pixels are then whole channel vectors, and oneDNN convolutions read
that layout without reordering.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnlrn_arch.archs.arch_util import add_residual, records_graph, run_in_strips
from cnlrn_arch.archs.nonlocal_attention import NonLocalBlock

# Input rows beyond a strip that local layers read: conv-ReLU-conv of an RCAB (2);
# the last x2 upsampler's conv (1) and the tail's two convs at 2x the rows (1).
RCAB_HALO = 2
UPSAMPLE_TAIL_HALO = 2


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 convolution that keeps height and width."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class CALayer(nn.Module):
    """Channel attention: scale each channel by a gate computed from its mean.

    Without autograd the input (a block's fresh conv output) is scaled in place.

    Args:
        channels (int): channels in and out.
        reduction (int): the gate's hidden layer has ``channels // reduction`` channels.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.conv_du(self.avg_pool(x))
        if records_graph(x, gate):
            return x * gate
        return x.mul_(gate)


class RCAB(nn.Module):
    """Residual channel attention block: x + CA(conv(ReLU(conv(x)))).

    Args:
        n_feats (int): channels in and out.
    """

    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats), CALayer(n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs, channel_attention = self.body[:3], self.body[3]
        return add_residual(channel_attention(run_in_strips(convs, x, RCAB_HALO)), x)


class SubGroup(nn.Module):
    """A non-local block followed by residual channel attention blocks and a conv, with a skip.

    Args:
        n_feats (int): channels in and out.
        n_rcabs (int): RCABs after the non-local block.
        patch_sizes (Sequence[int] | None): patch size of each head of the
            non-local block; None leaves the block out.
        attn_impl (str): as in :class:`~.cnlrn_arch.CNLRN`.
    """

    def __init__(self, n_feats: int, n_rcabs: int, patch_sizes: Sequence[int] | None, attn_impl: str):
        super().__init__()
        self.nonlocal_block = nn.Identity() if patch_sizes is None else NonLocalBlock(n_feats, patch_sizes, attn_impl)
        self.rcab_body = nn.Sequential(*[RCAB(n_feats) for _ in range(n_rcabs)], conv3x3(n_feats, n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer by layer, so the non-local block's output is freed once the
        # first RCAB has consumed it (a Sequential call would pin it to the end)
        y = self.nonlocal_block(x)
        for layer in self.rcab_body:
            y = layer(y)
        return add_residual(y, x)


class NLRG(nn.Module):
    """Non-local residual group: sub-groups and a conv with a long skip.

    Args:
        n_feats (int): channels in and out.
        n_subgroups (int): sub-groups in the group.
        n_rcabs (int): RCABs per sub-group.
        patch_sizes (Sequence[int] | None): as in :class:`SubGroup`.
        attn_impl (str): as in :class:`~.cnlrn_arch.CNLRN`.
    """

    def __init__(self, n_feats: int, n_subgroups: int, n_rcabs: int, patch_sizes: Sequence[int] | None, attn_impl: str):
        super().__init__()
        self.body = nn.Sequential(
            *[SubGroup(n_feats, n_rcabs, patch_sizes, attn_impl) for _ in range(n_subgroups)], conv3x3(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_residual(self.body(x), x)


def nlrg_stage(
    n_groups: int, n_feats: int, n_subgroups: int, n_rcabs: int, patch_sizes: Sequence[int] | None, attn_impl: str
) -> nn.Sequential:
    """``n_groups`` NLRGs and a closing conv; the caller adds the skip.

    Args:
        n_groups (int): NLRGs in the stage.
        n_feats (int): channels in and out.
        n_subgroups (int): sub-groups per NLRG.
        n_rcabs (int): RCABs per sub-group.
        patch_sizes (Sequence[int] | None): as in :class:`SubGroup`.
        attn_impl (str): as in :class:`~.cnlrn_arch.CNLRN`.
    """
    return nn.Sequential(
        *[NLRG(n_feats, n_subgroups, n_rcabs, patch_sizes, attn_impl) for _ in range(n_groups)],
        conv3x3(n_feats, n_feats),
    )


def upsampler_x2(n_feats: int) -> nn.Sequential:
    """Conv to 4x the channels and pixel shuffle: twice the height and width, ``n_feats`` channels."""
    return nn.Sequential(conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2))


class NonLocalResidualNet(nn.Module):
    """Features at LR -> image at 4x LR, upsampling progressively (x2, x2).

    The SR module of :class:`~.cnlrn_arch.CNLRN`, whose docstring explains
    the arguments both share.

    Args:
        n_colors (int): channels of the output image.
        n_feats (int): feature channels of the input and throughout.
        n_nlrgs_body (int): as in CNLRN.
        n_nlrgs_up1 (int): as in CNLRN.
        n_nlrgs_up2 (int): as in CNLRN.
        n_subgroups (int): as in CNLRN.
        n_rcabs (int): as in CNLRN.
        patch_sizes (Sequence[int] | None): CNLRN's ``nonlocal_psize``; None
            leaves the non-local blocks out (CNLRN's ``nonlocal_block=False``).
        attn_impl (str): as in CNLRN.
        upsampling (str): as in CNLRN; 'post' runs both x2 upsamplers in a row.
    """

    def __init__(
        self,
        n_colors: int,
        n_feats: int,
        n_nlrgs_body: int,
        n_nlrgs_up1: int,
        n_nlrgs_up2: int,
        n_subgroups: int,
        n_rcabs: int,
        patch_sizes: Sequence[int] | None,
        attn_impl: str,
        upsampling: str = 'progressive',
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_feats, H, W) features -> (N, n_colors, 4H, 4W) image; H and W multiples of every patch size."""
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
