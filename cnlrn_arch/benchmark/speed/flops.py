"""FLOPs of a CNLRN forward pass and the matmul peak that turns them into a floor.

Convolutions and linear layers are counted by ``torch.utils.flop_counter``
on the meta device (instant at any size). Attention is added by formula,
4 * N^2 * d per head (Q K^T and the weighted sum of V), because the counter
does not see inside CPU fused attention kernels. Elementwise work (softmax,
activations, residual sums) is not counted: the floor is the time the
matrix products alone would take at the machine's matmul peak.
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ...archs.cnlrn_arch import CNLRN
from ...archs.nonlocal_attention import PatchMultiHeadAttention

MATMUL_SIZE = 4096


def attention_flops(module, height, width, batch):
    """Q K^T and softmax(.) V of every head of ``module`` on a (height, width) map."""
    flops = 0
    for patch in module.patch_sizes:
        tokens = (height // patch) * (width // patch)
        flops += 4 * batch * tokens * tokens * module.head_channels * patch * patch
    return flops


def count_flops(config, lr_size, batch=1):
    """{'conv': convolution and linear FLOPs, 'attention': ..., 'total': ...} of one forward.

    The network is run on the meta device with autograd recording, so that it
    takes its plain full-map path: the strip-wise inference tail recomputes a
    few halo rows, which is overhead, not work.
    """
    attention = []

    def record(module, inputs):
        _, _, height, width = inputs[0].shape
        attention.append(attention_flops(module, height, width, batch))

    with torch.device('meta'):
        net = CNLRN(**config, attn_impl='sdpa')
        x = torch.empty(batch, 3, *lr_size, requires_grad=True)
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


def matmul_peak(dtype=torch.float32, device='cpu', size=MATMUL_SIZE, repeats=5):
    """Best GFLOP/s of a square matrix product, as a stand-in for the hardware's peak."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float('inf')
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.matmul(a, b)
        if device != 'cpu':
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
