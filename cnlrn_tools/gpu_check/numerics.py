"""Probes of ``cnlrn gpu-check`` on numbers: the machine, the small fixture, TF32 and the SDPA backends.

Each takes its JSON arguments (``args``, always with ``device``: 'cuda' or
'cpu'; the others are named in its docstring) and the
:class:`~.findings.Findings` it fills with figures and failed checks.
"""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import nullcontext
from typing import Any

import cv2
import skimage.data
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.archs.nonlocal_attention import ATTN_IMPLS, PatchMultiHeadAttention
from cnlrn_arch.data_prep.tiny_reds import make_tiny_reds
from cnlrn_arch.runtime.speed import AMP_DTYPES, Speed, autocast, bf16_native, to_memory_format, use_tf32
from cnlrn_base.errors import first_line
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.project import SMALL_FIXTURE
from cnlrn_tools.gpu_check.findings import Findings, rounded

# float32 (TF32 off) against the stored output, on any device and memory order
FIXTURE_ATOL = 1e-4
# relative L2 distance of an SDPA backend's output to the math backend's in float32
FP32_RTOL = 1e-3
HALF_RTOL = 5e-2
BACKENDS = {
    'math': SDPBackend.MATH,
    'flash': SDPBackend.FLASH_ATTENTION,
    'efficient': SDPBackend.EFFICIENT_ATTENTION,
    'cudnn': SDPBackend.CUDNN_ATTENTION,
}
# the operator each backend runs as, as the profiler names it (the CPU's flash kernel adds '_for_cpu')
BACKEND_OPS = {
    'flash': 'aten::_scaled_dot_product_flash_attention',
    'efficient': 'aten::_scaled_dot_product_efficient_attention',
    'cudnn': 'aten::_scaled_dot_product_cudnn_attention',
    'math': 'aten::_scaled_dot_product_attention_math',
}
PRECISIONS = ('fp32', 'bf16', 'fp16')


def environment(args: dict[str, Any], found: Findings) -> None:
    """torch, the GPU (capability, memory, bf16 in hardware, NCCL), cuDNN, the C++ compiler inductor needs."""
    cuda = torch.cuda.is_available()
    found.figures.update(
        torch=torch.__version__,
        cuda_available=cuda,
        cpu_cores=os.cpu_count(),
        cxx_compiler=shutil.which('g++') or shutil.which('c++') or 'none',
    )
    if args['device'] != 'cuda':
        return
    if not found.expect(cuda, 'CUDA is not available'):
        return
    props = torch.cuda.get_device_properties(0)
    found.figures.update(
        gpu=props.name,
        gpus_visible=torch.cuda.device_count(),
        compute_capability='.'.join(map(str, torch.cuda.get_device_capability())),
        memory_GiB=round(props.total_memory / 2**30, 1),
        cuda_runtime=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        bf16_native=bf16_native('cuda'),
        nccl=torch.distributed.is_nccl_available(),
    )
    found.expect(float(torch.ones(1024, device='cuda').sum()) == 1024, 'a sum on the GPU is wrong')
    found.expect(torch.distributed.is_nccl_available(), 'torch has no NCCL: torchrun on GPUs cannot work')


def data(args: dict[str, Any], found: Findings) -> None:
    """The tiny REDS-shaped data of the pipeline steps, and the photo ``cnlrn infer`` restores.

    Args:
        args (dict[str, Any]): ``root`` (the data's folder), ``infer_lr`` (the photo's LR side), ``photo`` (its path).
        found (Findings): receives ``paths`` (see :func:`~cnlrn_arch.data_prep.tiny_reds.make_tiny_reds`).
    """
    found.figures['paths'] = make_tiny_reds(args['root'])
    side = 4 * args['infer_lr']
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    top = (photo.shape[0] - side) // 2
    lr = bicubic_resize_uint8(photo[top : top + side, top : top + side], 1 / 4)
    os.makedirs(os.path.dirname(args['photo']), exist_ok=True)
    found.expect(cv2.imwrite(args['photo'], lr), f'cannot write {args["photo"]}')
    found.figures['photo'] = f'{args["photo"]} ({lr.shape[1]}x{lr.shape[0]})'


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


def _fixture_network(impl: str, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The small fixture's network in eval mode on ``device``, and the fixture (config, state_dict, input, output)."""
    fixture = torch.load(SMALL_FIXTURE, weights_only=True)
    net = CNLRN(**fixture['config'], attn_impl=impl).eval()
    net.load_state_dict(fixture['state_dict'], strict=True)
    return net.to(device), fixture


def fixture(args: dict[str, Any], found: Findings) -> None:
    """The small fixture in IEEE float32 (sdpa, naive, channels_last) against the release, and in bf16/fp16."""
    device = torch.device(args['device'])
    use_tf32(False)
    for impl in ATTN_IMPLS:
        net, stored = _fixture_network(impl, device)
        x = stored['input'].to(device)
        with torch.inference_mode():
            diff = _max_diff(net(x), stored['output'])
        found.figures[f'{impl} fp32 max |diff| to stored'] = rounded(diff)
        found.expect(diff <= FIXTURE_ATOL, f'{impl} float32 differs from the stored output by {diff:.2e}')
    net, stored = _fixture_network('sdpa', device)
    net = to_memory_format(net, Speed(channels_last=True), torch.device(device))
    x = stored['input'].to(device, memory_format=torch.channels_last)
    with torch.inference_mode():
        diff = _max_diff(net(x), stored['output'])
    found.figures['channels_last fp32 max |diff| to stored'] = rounded(diff)
    found.expect(diff <= FIXTURE_ATOL, f'channels_last float32 differs from the stored output by {diff:.2e}')
    net, stored = _fixture_network('sdpa', device)
    for precision in ('bf16', 'fp16'):
        with torch.inference_mode(), autocast(device, AMP_DTYPES[precision]):
            out = net(stored['input'].to(device))
        found.figures[f'{precision} max |diff| to stored'] = rounded(_max_diff(out, stored['output']))
        found.expect(bool(torch.isfinite(out).all()), f'{precision} output is not finite')


def fixture_tf32(args: dict[str, Any], found: Findings) -> None:
    """What TF32 convolutions and matmuls change in the small fixture's output (recorded, finite)."""
    device = torch.device(args['device'])
    use_tf32(True)
    for impl in ATTN_IMPLS:
        net, stored = _fixture_network(impl, device)
        with torch.inference_mode():
            out = net(stored['input'].to(device))
        diff = _max_diff(out, stored['output'])
        found.figures[f'{impl} tf32 max |diff| to stored'] = rounded(diff)
        found.figures[f'{impl} tf32 within the float32 tolerance {FIXTURE_ATOL:g}'] = diff <= FIXTURE_ATOL
        found.expect(bool(torch.isfinite(out).all()), f'{impl} TF32 output is not finite')


def _relative(a: torch.Tensor, reference: torch.Tensor) -> float:
    """Relative L2 distance of ``a`` to ``reference``."""
    return float((a - reference).norm() / reference.norm())


def _backend_run(
    net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, backend: str | None, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradients) of one forward and backward, as float32 on the CPU, with ``backend`` (None: default)."""
    net.zero_grad(set_to_none=True)
    with sdpa_kernel([BACKENDS[backend]]) if backend else nullcontext(), autocast(x.device, AMP_DTYPES.get(precision)):
        out = net(x)
    F.l1_loss(out.float(), target).backward()
    grads = torch.cat([p.grad.float().flatten() for p in net.parameters() if p.grad is not None])
    return out.detach().float().cpu(), grads.cpu()


def _default_backend(net: torch.nn.Module, x: torch.Tensor, precision: str) -> list[str]:
    """The backends torch's default dispatch ran in one forward (with autograd) in ``precision``, from the profiler."""
    profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with profile as profiler, autocast(x.device, AMP_DTYPES.get(precision)):
        net(x)
    names = {event.key for event in profiler.key_averages()}
    return sorted(b for b, op in BACKEND_OPS.items() if op in names or f'{op}_for_cpu' in names)


def sdpa_backends(args: dict[str, Any], found: Findings) -> None:
    """Forward and backward of CNLRN under each SDPA backend and precision against the math backend in float32.

    Args:
        args (dict[str, Any]): ``config`` (CNLRN arguments; {} for the released network) and ``input``
            ((batch, LR height, LR width)).
        found (Findings): receives the table of backends and the default dispatch's picks.
    """
    device = torch.device(args['device'])
    use_tf32(False)
    torch.manual_seed(0)
    config = args['config']
    net = CNLRN(**config).to(device)
    attention = next(m for m in net.modules() if isinstance(m, PatchMultiHeadAttention))
    head_dim = attention.head_channels * attention.patch_sizes[0] ** 2
    batch, height, width = args['input']
    x = torch.rand(batch, 3, height, width, device=device)
    target = torch.rand(batch, 3, 4 * height, 4 * width, device=device)
    found.figures['network'] = f'CNLRN({config or "released"}), head dim {head_dim}, input {list(x.shape)}'
    reference, reference_grads = _backend_run(net, x, target, 'math', 'fp32')
    table = {}
    for backend in BACKENDS:
        for precision in PRECISIONS:
            name = f'{backend} {precision}'
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                try:
                    out, grads = _backend_run(net, x, target, backend, precision)
                except RuntimeError as err:
                    why = [first_line(w.message) for w in caught] or [first_line(err)]
                    table[name] = 'unsupported: ' + ' / '.join(why)[:300]
                    continue
            finite = bool(torch.isfinite(out).all() and torch.isfinite(grads).all())
            error = _relative(out, reference)
            table[name] = {
                'output rel. error': rounded(error),
                'gradient rel. error': rounded(_relative(grads, reference_grads)),
                'finite': finite,
            }
            found.expect(finite, f'{name}: non-finite output or gradients')
            tolerance = FP32_RTOL if precision == 'fp32' else HALF_RTOL
            found.expect(error <= tolerance, f'{name}: output {error:.2e} from math fp32 (tolerance {tolerance:g})')
    found.figures['backends (vs math fp32)'] = table
    picks = {precision: _default_backend(net, x, precision) for precision in PRECISIONS}
    found.figures['default picks'] = picks
    if device.type == 'cuda':
        for precision, picked in picks.items():
            found.expect(
                'math' not in picked,
                f'{precision}: the default SDPA dispatch falls back to math (score matrices written out) at head '
                f'dim {head_dim}',
            )
