"""Deblurring module of CNLRN and its pre-training network.

An encoder-decoder in the style of the scale-recurrent network (Tao et al.,
CVPR 2018) with the recurrence and the ConvLSTM removed. It turns a blurry LR
image into features of a sharp LR image at the same resolution; during
pre-training an image head makes it output that sharp image.

Module and attribute names follow the authors' release so that their
``.pth`` files load strictly.
"""

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from cnlrn_arch.archs.arch_util import add_residual, check_positive, pad_to_multiple

KERNEL_SIZE = 5
# the encoder halves the resolution twice, so input sides must divide by 4
DEBLUR_MULTIPLE = 4


class ConvLayer(nn.Module):
    """5x5 convolution (stride 1 or 2), optionally followed by ReLU.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): 2 halves height and width.
        act (bool): follow the convolution by ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: bool = True):
        super().__init__()
        layers = [nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, stride=stride, padding=KERNEL_SIZE // 2)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity shortcut.

    Args:
        channels (int): channels in and out.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, act=False), nn.ReLU(inplace=True), ConvLayer(channels, channels, act=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_residual(self.body(x), x)


class DeconvLayer(nn.Module):
    """Transposed 3x3 convolution that doubles height and width, then ReLU.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DeblurNet(nn.Module):
    """Encoder-decoder that maps a blurry image to sharp features.

    Height and width of the input must be multiples of 4.

    Args:
        n_colors (int): channels of the input image.
        n_feats (int): channels F at full resolution; the encoder uses 2F at
            1/2 and 4F at 1/4 resolution.
        n_blocks (int): residual blocks at 1/4 resolution (the bottleneck).
        image_head (bool): append a convolution to ``n_colors`` channels so the
            module outputs an image (pre-training) instead of F feature maps.
    """

    def __init__(self, n_colors: int = 3, n_feats: int = 64, n_blocks: int = 20, image_head: bool = False):
        super().__init__()
        f = n_feats
        self.inBlock = nn.Sequential(ConvLayer(n_colors, f), *[ResBlock(f) for _ in range(3)])
        self.encoder_first = nn.Sequential(ConvLayer(f, 2 * f, stride=2), *[ResBlock(2 * f) for _ in range(3)])
        self.encoder_second = ConvLayer(2 * f, 4 * f, stride=2)
        self.body = nn.Sequential(*[ResBlock(4 * f) for _ in range(n_blocks)])
        self.decoder_second = DeconvLayer(4 * f, 2 * f)
        self.decoder_first = nn.Sequential(*[ResBlock(2 * f) for _ in range(3)], DeconvLayer(2 * f, f))
        out_layers = [ResBlock(f) for _ in range(3)]
        if image_head:
            out_layers.append(ConvLayer(f, n_colors, act=False))
        self.outBlock = nn.Sequential(*out_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_colors, H, W) blurry image -> (N, F or n_colors, H, W) sharp features or image."""
        full = self.inBlock(x)
        half = self.encoder_first(full)
        quarter = self.body(self.encoder_second(half))
        half = self.decoder_first(self.decoder_second(quarter) + half)
        return self.outBlock(half + full)


@ARCH_REGISTRY.register()
class CNLRNPreDeblur(nn.Module):
    """CNLRN's deblurring module with its image head, for pre-training.

    Inputs of any size work: sides that are not multiples of 4 are padded
    and the output is cropped back.

    Trained against the bicubic x1/4 downsample of the sharp HR frame; its
    ``DeblurNet.*`` weights (minus the head, ``DeblurNet.outBlock.3``) then
    initialise the deblurring module of :class:`CNLRN`.

    Args:
        n_colors (int): image channels.
        n_feats (int): :class:`DeblurNet`'s ``n_feats``.
        n_deblur_blocks (int): :class:`DeblurNet`'s ``n_blocks``.
    """

    def __init__(self, n_colors: int = 3, n_feats: int = 64, n_deblur_blocks: int = 20):
        super().__init__()
        check_positive(n_colors=n_colors, n_feats=n_feats, n_deblur_blocks=n_deblur_blocks)
        self.DeblurNet = DeblurNet(n_colors, n_feats, n_deblur_blocks, image_head=True)
        self.size_multiple = DEBLUR_MULTIPLE  # inputs are padded to it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_colors, H, W) blurry LR image -> (N, n_colors, H, W) sharp LR image."""
        height, width = x.shape[-2:]
        return self.DeblurNet(pad_to_multiple(x, self.size_multiple))[..., :height, :width]
