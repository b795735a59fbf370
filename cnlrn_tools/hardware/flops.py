"""FLOPs of a CNLRN forward pass and of a training step; with the GEMM peak (:mod:`.gemm_peak`), a floor.

Convolutions and linear layers are counted by ``torch.utils.flop_counter``
on the meta device (instant at any size). Attention is added by formula,
4 * N^2 * d per head (Q K^T and the weighted sum of V), because the counter
does not see inside CPU fused attention kernels. Elementwise work (softmax,
activations, residual sums) is not counted: the floor is the time the
matrix products alone would take at the machine's GEMM peak, measured in
the precision of the case (a TF32 case against a TF32 product).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.archs.nonlocal_attention import PatchMultiHeadAttention


def attention_flops(module, height, width, batch):
    """Q K^T and softmax(.) V of every head of ``module`` on a (height, width) map."""
    flops = 0
    for patch in module.patch_sizes:
        tokens = (height // patch) * (width // patch)
        flops += 4 * batch * tokens * tokens * module.head_channels * patch * patch
    return flops


def count_flops(config, lr_size, batch=1):
    """{'conv': convolution and linear FLOPs, 'attention': ..., 'total': ...} of one CNLRN forward.

    ``config`` overrides the released configuration; see :func:`network_flops`.
    """
    with torch.device('meta'):
        net = CNLRN(**config, attn_impl='sdpa')
    return network_flops(net, (batch, 3, *lr_size))


def network_flops(net: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """{'conv': convolution and linear FLOPs, 'attention': ..., 'total': ...} of one forward of ``net``.

    The network is run on the meta device with autograd recording, so that it
    takes its plain full-map path: the strip-wise inference tail recomputes a
    few halo rows, which is overhead, not work.

    Args:
        net (nn.Module): a network on the meta device; its :class:`PatchMultiHeadAttention` modules
            are counted by formula.
        input_shape (tuple[int, ...]): (batch, channels, height, width) of its input.
    """
    attention = []

    def record(module, inputs):
        _, _, height, width = inputs[0].shape
        attention.append(attention_flops(module, height, width, input_shape[0]))

    x = torch.empty(*input_shape, device='meta', requires_grad=True)
    hooks = [m.register_forward_pre_hook(record) for m in net.modules() if isinstance(m, PatchMultiHeadAttention)]
    with FlopCounterMode(display=False) as counter:
        net(x)
    for hook in hooks:
        hook.remove()
    counts = counter.get_flop_counts()['Global']
    conv = sum(counts.get(op, 0) for op in (torch.ops.aten.convolution, torch.ops.aten.addmm, torch.ops.aten.mm))
    return {'conv': conv, 'attention': sum(attention), 'total': conv + sum(attention)}


def training_flops(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one training step of ``net``: forward and backward, as ``FlopCounterMode`` counts them on meta.

    The input takes no gradient, as in training, so the first layer's input
    gradient is not counted; on the meta device attention runs as explicit
    batched products, which the counter sees (forward 4 N^2 d, backward twice that).
    The optimizer's elementwise update is not counted.

    Args:
        net (nn.Module): a network on the meta device.
        input_shape (tuple[int, ...]): (batch, channels, height, width) of its input.
    """
    x = torch.empty(*input_shape, device='meta')
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    return sum(counter.get_flop_counts()['Global'].values())


def cross_check(config: dict, lr_size: tuple[int, int]) -> dict[str, float]:
    """TFLOPs of one inference forward by this module's count beside ``FlopCounterMode``'s count of every operator.

    The counter runs the explicit score-matrix attention, whose products it
    sees as ``bmm``; this module counts the same products by formula. Neither
    counts softmax, activations or sums, and both count a padded convolution
    over every output pixel, zeros included (what the kernels compute).

    Args:
        config (dict): CNLRN arguments overriding the released configuration.
        lr_size (tuple[int, int]): LR (height, width).
    """
    ours = count_flops(config, lr_size)
    with torch.device('meta'):
        net = CNLRN(**config, attn_impl='naive')
    with FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, *lr_size, device='meta', requires_grad=True))
    counted = {str(op).removeprefix('aten.'): n / 1e12 for op, n in counter.get_flop_counts()['Global'].items()}
    return {
        'this count: conv + linear': ours['conv'] / 1e12,
        'this count: attention (formula)': ours['attention'] / 1e12,
        'this count: total': ours['total'] / 1e12,
        **{f'FlopCounterMode: {op}': n for op, n in sorted(counted.items())},
        'FlopCounterMode: total': sum(counted.values()),
    }


def floor_seconds(flops, peak_gflops):
    """The time ``flops`` take at the GEMM peak: what a case is measured against."""
    return flops / (peak_gflops * 1e9)


def size_label(size):
    """'HEIGHTxWIDTH' of an LR frame size, as the benchmarks name their cases."""
    return f'{size[0]}x{size[1]}'


def floor_of(row, run):
    """The floor of a case of ``cnlrn bench``'s results ``run``: its FLOPs at the peak of its precision."""
    return floor_seconds(row['flops'], run['peak_gflops'][row['precision']])


def floor_ratio(row, run):
    """A measured case's median time over its floor (at least 1, or the floor is wrong)."""
    return row['median_s'] / floor_of(row, run)
