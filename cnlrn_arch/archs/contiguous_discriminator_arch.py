"""basicsr's VGG-style discriminator for generators whose output is channels-last (CNLRN's).

basicsr flattens the discriminator's features with ``view``, which fails on a
channels-last tensor, and convolutions keep their input's memory format: the
registered subclass makes its input contiguous first. Its weights are
basicsr's, key for key, so checkpoints of either load into the other.
"""

import torch
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class ContiguousVGGStyleDiscriminator(VGGStyleDiscriminator):
    """VGGStyleDiscriminator on a contiguous (NCHW-ordered) copy of its input; the same arguments as basicsr's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score (N, C, H, W) images of any memory format.

        Args:
            x (torch.Tensor): the images, ``input_size`` pixels square.

        Returns:
            torch.Tensor: (N, 1) scores.
        """
        return super().forward(x.contiguous())
