"""FLOPs of a CNLRN forward pass and the matmul peak that turns them into a floor.

Convolutions and linear layers are counted by ``torch.utils.flop_counter``
on the meta device (instant at any size). Attention is added by formula,
4 * N^2 * d per head (Q K^T and the weighted sum of V), because the counter
does not see inside CPU fused attention kernels. Elementwise work (softmax,
activations, residual sums) is not counted: the floor is the time the
matrix products alone would take at the machine's matmul peak, measured in
the precision of the case (a TF32 case against a TF32 product).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ...archs.cnlrn_arch import CNLRN
from ...archs.nonlocal_attention import PatchMultiHeadAttention
from ...utils.speed import AMP_DTYPES, tf32_set_to

MATMUL_SIZE = 4096
# a training step's FLOPs per forward's: the backward costs about twice the forward
TRAINING_FLOPS_PER_FORWARD = 3
# matmul peak: seconds of products before timing, and the least seconds one timed burst lasts
WARMUP_S = 0.2
BURST_S = 0.05


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


def floor_seconds(flops, peak_gflops):
    """The time ``flops`` take at the matmul peak: what a case is measured against."""
    return flops / (peak_gflops * 1e9)


def matmul_peak(precision: str = 'fp32', device: str = 'cpu', size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Best GFLOP/s of a square matrix product in ``precision``, as a stand-in for the hardware's peak.

    The product is first repeated for WARMUP_S (clocks ramp up, kernels are
    chosen), then timed ``repeats`` times in bursts of products lasting at
    least BURST_S each, so that launch overhead and the timer do not count;
    the best burst is taken.

    Args:
        precision (str): 'fp32' (IEEE float32), 'tf32' (float32 with TF32 matmuls, where CUDA has
            them), 'bf16' or 'fp16': the precision of the cases measured against it.
        device (str): 'cpu' or 'cuda'.
        size (int): side of the square matrices.
        repeats (int): bursts timed.

    Returns:
        float: GFLOP/s of the best burst.
    """
    dtype = AMP_DTYPES.get(precision, torch.float32)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def seconds(products):
        start = time.perf_counter()
        for _ in range(products):
            torch.matmul(a, b)
        if device != 'cpu':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with tf32_set_to(precision == 'tf32'):
        warmed, products = 0.0, 0
        while warmed < WARMUP_S or products < 2:
            warmed += seconds(1)
            products += 1
        burst = max(1, math.ceil(BURST_S / (warmed / products)))
        best = min(seconds(burst) for _ in range(repeats)) / burst
    return 2 * size**3 / best / 1e9
