"""The machine's GEMM peak: the best rate any library here reaches, the denominator of every FLOP floor.

One library's square matmul is not a peak: on AMD CPUs torch's default BLAS
(MKL) stays well below what oneDNN, onnxruntime's MLAS or numpy's OpenBLAS
reach, and a case timed against it can come out faster than its "floor". So
each library available here multiplies matrices of several shapes (a large
square, and the network's own GEMMs: the attention's Q K^T and P V and the
1x1 embeddings) in the precision of the case, and the floor takes the best
rate of them all:

* ``torch``: ``torch.matmul``, torch's default BLAS (MKL on x86; cuBLAS on CUDA);
* ``torch oneDNN``: ``mkldnn_linear`` on oneDNN tensors (CPU, float32 and bf16);
* ``onnxruntime``: a one-node MatMul graph on the CPU provider (MLAS), float32, where installed;
* ``numpy``: numpy's BLAS, float32;
* ``torch conv``: a channels-last 3x3 convolution of the network's width
  (oneDNN on the CPU, cuDNN on CUDA), an implicit GEMM of (pixels, 9 C, C):
  oneDNN's direct convolutions outrun every library's GEMM on AMD CPUs, and
  most of CNLRN's work outside attention is such convolutions.

A case in a lower precision (bf16, fp16, TF32) is measured against the best
of its own precision and of float32, because autocast runs some operators in
float32 and a CPU without bf16 units converts to float32 to compute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from cnlrn_arch.runtime.speed import AMP_DTYPES, bf16_native, tf32_set_to
from cnlrn_base.command_defaults import MATMUL_SIZE

# seconds of products before timing (clocks ramp up, kernels are chosen), and the least seconds a timed burst lasts
WARMUP_S = 0.2
BURST_S = 0.05
BURSTS = 3
# the network's GEMMs at most this many tokens (or pixels) long: the rate is reached well before, the time is not
MAX_GEMM_ROWS = 4096
LIBRARIES = ('torch', 'torch oneDNN', 'onnxruntime', 'numpy')


def gemm_shapes(config: dict, lr_size: Sequence[int], square: int = MATMUL_SIZE) -> dict[str, tuple[int, int, int]]:
    """Name -> (M, K, N) of the GEMMs the peak is measured on: a square one and the network's own.

    Args:
        config (dict): CNLRN arguments overriding the released configuration (features, patch sizes).
        lr_size (Sequence[int]): LR (height, width) whose attention and embeddings are taken.
        square (int): side of the square product.
    """
    n_feats = config.get('n_feats', 64)
    patch_sizes = config.get('nonlocal_psize', (4, 4, 4, 4))
    patch = min(patch_sizes)
    head_dim = n_feats // len(patch_sizes) * patch * patch
    tokens = max(1, min(MAX_GEMM_ROWS, (lr_size[0] // patch) * (lr_size[1] // patch)))
    pixels = min(MAX_GEMM_ROWS * 4, lr_size[0] * lr_size[1])
    return {
        f'square {square}': (square, square, square),
        'attention Q K^T': (tokens, head_dim, tokens),
        'attention P V': (tokens, tokens, head_dim),
        '1x1 embedding': (pixels, n_feats, n_feats // len(patch_sizes)),
    }


def conv_geometry(config: dict, lr_size: Sequence[int]) -> tuple[int, int, int]:
    """(height, width, channels) of the 3x3 convolution timed beside the GEMMs: LR rows, 4 MAX_GEMM_ROWS pixels."""
    height = max(1, min(lr_size[0], MAX_GEMM_ROWS * 4 // max(1, lr_size[1])))
    return height, lr_size[1], config.get('n_feats', 64)


def best_rate(product: Callable[[], object], flops: float, synchronize: Callable[[], None] = lambda: None) -> float:
    """GFLOP/s of the best of BURSTS timed bursts of ``product``, after WARMUP_S of untimed ones.

    Bursts last at least BURST_S, so that launch overhead and the timer do not count.
    """

    def seconds(products):
        start = time.perf_counter()
        for _ in range(products):
            product()
        synchronize()
        return time.perf_counter() - start

    warmed, products = 0.0, 0
    while warmed < WARMUP_S or products < 2:
        warmed += seconds(1)
        products += 1
    burst = max(1, math.ceil(BURST_S / (warmed / products)))
    best = min(seconds(burst) for _ in range(BURSTS)) / burst
    return flops / best / 1e9


def _onnxruntime_product(a: torch.Tensor, b: torch.Tensor) -> Callable[[], object] | None:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    (m, k), n = a.shape, b.shape[1]
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['a', 'b'], ['c'])],
        'matmul',
        [helper.make_tensor_value_info('a', TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info('c', TensorProto.FLOAT, [m, n])],
        initializer=[helper.make_tensor('b', TensorProto.FLOAT, [k, n], b.numpy().ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    feed = {'a': a.numpy()}
    return lambda: session.run(None, feed)


def library_product(library: str, a: torch.Tensor, b: torch.Tensor) -> Callable[[], object] | None:
    """A call computing ``a @ b`` through ``library``, or None where it cannot here (device, precision, install).

    Args:
        library (str): one of LIBRARIES.
        a (torch.Tensor): (M, K), on its device and in its precision.
        b (torch.Tensor): (K, N), alike.
    """
    on_cpu = a.device.type == 'cpu'
    if library == 'torch':
        return lambda: torch.matmul(a, b)
    if not on_cpu:
        return None
    if library == 'torch oneDNN':
        if not torch.backends.mkldnn.is_available() or (a.dtype == torch.bfloat16 and not bf16_native('cpu')):
            return None
        a_dnn, b_t_dnn = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
        return lambda: torch._C._nn.mkldnn_linear(a_dnn, b_t_dnn)
    if a.dtype != torch.float32:
        return None
    if library == 'onnxruntime':
        return _onnxruntime_product(a, b)
    if library == 'numpy':
        a_np, b_np = a.numpy(), b.numpy()
        return lambda: a_np @ b_np
    raise ValueError(f'unknown library {library!r}; one of {LIBRARIES}')


def conv_product(height: int, width: int, channels: int, dtype: torch.dtype, device: str) -> Callable[[], object]:
    """A channels-last 3x3 convolution of ``channels`` to ``channels`` on a (height, width) map, as CNLRN runs them."""
    x = torch.randn(1, channels, height, width, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)
    conv = conv.to(memory_format=torch.channels_last).requires_grad_(False)
    return lambda: conv(x)


def measure_peaks(
    precisions: Sequence[str],
    device: str,
    shapes: dict[str, tuple[int, int, int]],
    conv: tuple[int, int, int] | None = None,
) -> list[dict[str, object]]:
    """GFLOP/s of every library that runs here, on every shape, in every precision asked (and float32).

    Args:
        precisions (Sequence[str]): 'fp32', 'tf32' (float32 with TF32 matmuls), 'bf16', 'fp16'.
        device (str): 'cpu' or 'cuda'.
        shapes (dict[str, tuple[int, int, int]]): name -> (M, K, N), see :func:`gemm_shapes`.
        conv (tuple[int, int, int] | None): (height, width, channels) of a 3x3 convolution timed as well
            (see :func:`conv_geometry`), or None.

    Returns:
        list[dict]: one row per measurement: library, shape, (M, K, N), precision, gflops.
    """
    synchronize = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    rows = []
    for precision in dict.fromkeys(('fp32', *precisions)):
        dtype = AMP_DTYPES.get(precision, torch.float32)
        with tf32_set_to(precision == 'tf32'):
            for name, (m, k, n) in shapes.items():
                a = torch.randn(m, k, device=device).to(dtype)
                b = torch.randn(k, n, device=device).to(dtype)
                for library in LIBRARIES:
                    product = library_product(library, a, b)
                    if product is None:
                        continue
                    gflops = best_rate(product, 2 * m * k * n, synchronize)
                    rows.append(dict(library=library, shape=name, mnk=[m, k, n], precision=precision, gflops=gflops))
            if conv is not None and (device != 'cpu' or dtype == torch.float32 or bf16_native('cpu')):
                height, width, channels = conv
                m, k, n = height * width, 9 * channels, channels
                with torch.inference_mode():
                    gflops = best_rate(conv_product(*conv, dtype, device), 2 * m * k * n, synchronize)
                shape = f'3x3 convolution {height}x{width}x{channels}'
                rows.append(dict(library='torch conv', shape=shape, mnk=[m, k, n], precision=precision, gflops=gflops))
    return rows


def measure_network_peaks(
    precisions: Sequence[str], device: str, config: dict, lr_size: Sequence[int], square: int = MATMUL_SIZE
) -> list[dict[str, object]]:
    """:func:`measure_peaks` on the square GEMM, the network's own GEMMs and its 3x3 convolution at ``lr_size``.

    Args:
        precisions (Sequence[str]): see :func:`measure_peaks`.
        device (str): 'cpu' or 'cuda'.
        config (dict): CNLRN arguments overriding the released configuration.
        lr_size (Sequence[int]): LR (height, width) whose shapes are taken.
        square (int): side of the square product.
    """
    shapes = gemm_shapes(config, lr_size, square)
    return measure_peaks(precisions, device, shapes, conv=conv_geometry(config, lr_size))


def best_of(*measurements: Sequence[dict]) -> list[dict]:
    """Row by row, the fastest of several :func:`measure_network_peaks` of the same GEMMs, taken at different times.

    A peak measured while other work held the machine is too low to be a floor: on a loaded 2-core machine a
    peak taken before the cases stood at 202 GFLOP/s while the network's own attention then ran at 247.
    """
    return [max(rows, key=lambda r: r['gflops']) for rows in zip(*measurements, strict=True)]


def peak_of(rows: Sequence[dict], precision: str) -> dict:
    """The row that sets the peak of a ``precision`` case: the fastest in that precision or in float32."""
    return max((r for r in rows if r['precision'] in (precision, 'fp32')), key=lambda r: r['gflops'])


def peaks(rows: Sequence[dict], precisions: Sequence[str]) -> dict[str, float]:
    """Precision -> the peak GFLOP/s its cases are measured against (see :func:`peak_of`)."""
    return {p: peak_of(rows, p)['gflops'] for p in precisions}
