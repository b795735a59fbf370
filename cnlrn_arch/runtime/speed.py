"""Speed options shared by ``RobustSRModel``, ``cnlrn infer`` and ``cnlrn bench``: autocast, channels_last,
torch.compile, TF32.

All are off by default, so a plain run computes in float32, exactly as
before they existed; on the CPU it always runs in channels-last order (see
:func:`channels_last_on`), which changes how, not what, it computes. In option files they read::

    train:
      amp: ~                 # ~ or fp32 (float32), bf16 or fp16; fp16 trains with a gradient scaler
    val:
      amp: ~                 # validation and ``basicsr test``; ~ follows train:amp
    speed:
      channels_last: false   # network weights, and so its activations, in NHWC memory order (always on the CPU)
      compile: false         # true, or torch.compile's arguments: {mode, backend, dynamic, fullgraph}
      tf32: false            # CUDA float32 convolutions and matmuls in TF32 (10-bit mantissa) on Ampere and later

Precision lives with the phase it changes (BasicSR keeps per-phase settings
in ``train`` and ``val``); ``speed`` changes how, not what, the network
computes, so one section serves training and testing alike.

``tf32`` is false by default, and then applied, because torch's own default
is neither float32 nor TF32: cuDNN convolutions run in TF32 while matmuls
(the attention's) stay float32, so "fp32" on a GPU would differ from fp32 on
the CPU by about 1e-3 (relative) in each convolution. With false, float32 means IEEE float32 on every device:
GPU and CPU outputs agree within float rounding and the released numbers are
computed as published. ``tf32: true`` is the explicit speed trade (several
times the float32 throughput of tensor cores), like ``amp: bf16``, which is
faster still. The setting is process-wide (torch keeps it in global flags),
applied to convolutions and matmuls alike when the model is built, by
``cnlrn infer --tf32`` and per case by ``cnlrn bench``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

from cnlrn_base.errors import UserError, first_line

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
SPEED_KEYS = ('channels_last', 'compile', 'tf32')
# torch.compile's keyword arguments an option file may set, with the types each accepts
COMPILE_ARGS = {'mode': (str, type(None)), 'backend': (str,), 'dynamic': (bool, type(None)), 'fullgraph': (bool,)}


@dataclass(frozen=True)
class Speed:
    channels_last: bool = False
    compile: dict = None  # torch.compile's keyword arguments; None: not compiled
    tf32: bool = False


def bf16_native(device: str) -> bool:
    """Whether ``device`` computes bf16 in hardware (on CPU: oneDNN's check for AVX512-BF16 or AMX).

    On CUDA, compute capability 8.0 (Ampere) or later: ``torch.cuda.is_bf16_supported()``
    also counts the emulation of older GPUs, far slower than their float32.
    """
    if device == 'cuda':
        return torch.cuda.get_device_capability() >= (8, 0)
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_bf16_time_ratio() -> float:
    """Time of a bf16 3x3 convolution over that of the same convolution in float32 on this CPU.

    Hardware bf16 is not always the faster: on an Intel Xeon with AVX512-BF16
    (no AMX) oneDNN ran CNLRN's 3x3 convolutions at 170 GFLOP/s in bf16
    against 250 in float32, and MKL's 2048 GEMM at 163 against 307. The
    probe is one 64-channel convolution on a 32x32 channels-last map (75
    MFLOP), best of 3 after a warm-up in each precision.
    """
    conv = nn.Conv2d(64, 64, 3, padding=1).requires_grad_(False).to(memory_format=torch.channels_last)
    x = torch.rand(1, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    seconds = []
    with torch.inference_mode():
        for dtype in (torch.bfloat16, torch.float32):
            conv_d, x_d = conv.to(dtype), x.to(dtype)
            conv_d(x_d)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                conv_d(x_d)
                times.append(time.perf_counter() - start)
            seconds.append(min(times))
    return seconds[0] / seconds[1]


def slow_precision_note(precision: str | None, device: str) -> str | None:
    """One line for a ``precision`` that runs slower than float32 on ``device`` ('cpu' or 'cuda'), else None.

    Without AVX512-BF16 or AMX a CPU converts bf16 to float32 for every
    product: measured on an AVX2 CPU, 30.6 s of CPU time against 14.3 s in
    float32 for one 256x256 image. With them it may still be slower
    (:func:`cpu_bf16_time_ratio`), which a probe of a few milliseconds tells.
    """
    if precision != 'bf16' or device != 'cpu':
        return None
    if not bf16_native('cpu'):
        return 'bf16 is emulated on this CPU (no AVX512-BF16 or AMX), about 2x slower than float32: leave it off'
    ratio = cpu_bf16_time_ratio()
    if ratio > 1:
        return f'bf16 runs slower than float32 on this CPU (a 3x3 convolution took {ratio:.1f}x as long): leave it off'
    return None


def amp_dtype(value, where):
    """The torch dtype of an amp option (~ or 'fp32', 'bf16', 'fp16'); None for float32."""
    if value is None or value == 'fp32':
        return None
    if value not in AMP_DTYPES:
        raise UserError(f"{where} must be ~ or 'fp32' (float32), 'bf16' or 'fp16', got {value!r}")
    return AMP_DTYPES[value]


def check_autocast(device_type: str, dtype: torch.dtype | None, what: str) -> None:
    """Raise a UserError naming ``what`` if autocast to ``dtype`` does not work on ``device_type``.

    torch only warns, and then silently computes in float32, where a dtype is
    unsupported; a user who asked for it should know. CUDA is initialised
    first, outside the check: a warning of its start-up is no answer about autocast.

    Args:
        device_type (str): 'cpu' or 'cuda'.
        dtype (torch.dtype | None): the autocast dtype; None (float32) passes.
        what (str): the option or flag that asked for it, to start the message.
    """
    if dtype is None:
        return
    if device_type == 'cuda' and torch.cuda.is_available():
        torch.cuda.init()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        try:
            torch.autocast(device_type, dtype=dtype)
        except (RuntimeError, UserWarning) as err:
            raise UserError(
                f'{what}: autocast to {dtype} does not work on {device_type} here: {first_line(err)}'
            ) from None


def autocast(device, dtype):
    """Autocast on ``device``'s type to ``dtype``; a no-op context for None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def compile_args(value, where):
    """torch.compile's keyword arguments for a ``compile`` option: false/~ (None), true ({}) or a mapping."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise UserError(f'{where} must be true, false or a mapping of {", ".join(COMPILE_ARGS)}, got {value!r}')
    for key, arg in value.items():
        if key not in COMPILE_ARGS:
            raise UserError(f'{where}: unknown key {key!r}; known: {", ".join(COMPILE_ARGS)}')
        if not isinstance(arg, COMPILE_ARGS[key]):
            raise UserError(f'{where}:{key}: {arg!r} is not a valid value')
    try:
        torch.compile(nn.Identity(), **value)  # lazy: checks mode and backend, compiles nothing
    except RuntimeError as err:
        raise UserError(f'{where}: {first_line(err)}') from None
    return dict(value)


def parse_speed(opt: dict, prefix: str = '') -> tuple[torch.dtype | None, torch.dtype | None, Speed]:
    """(train amp dtype, val amp dtype, :class:`Speed`) of a BasicSR option dict; UserError on bad values.

    Args:
        opt (dict): the options, with optional ``train: {amp}``, ``val: {amp}`` and ``speed`` sections.
        prefix (str): an option file's path and ': ', to start each error message.
    """
    train_amp = amp_dtype((opt.get('train') or {}).get('amp'), f'{prefix}train:amp')
    val = opt.get('val') or {}
    val_amp = train_amp if val.get('amp') is None else amp_dtype(val['amp'], f'{prefix}val:amp')
    section = opt.get('speed') or {}
    known = ', '.join(SPEED_KEYS)
    if not isinstance(section, dict):
        raise UserError(f'{prefix}speed must be a mapping of {known}, got {section!r}')
    unknown = set(section) - set(SPEED_KEYS)
    if unknown:
        raise UserError(f'{prefix}speed: unknown keys {sorted(unknown)}; known: {known}')
    flags = {key: section.get(key, False) for key in ('channels_last', 'tf32')}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise UserError(f'{prefix}speed:{key} must be true or false, got {value!r}')
    compile_ = compile_args(section.get('compile'), f'{prefix}speed:compile')
    return train_amp, val_amp, Speed(flags['channels_last'], compile_, flags['tf32'])


def use_tf32(enabled: bool) -> None:
    """Let CUDA float32 convolutions and matmuls use TF32, or hold both to IEEE float32 (see the module docstring).

    The legacy flags, not torch's ``fp32_precision`` settings: torch 2.14 raises
    on reading either kind once both have been set, and the legacy setters keep
    both readable (the conv flag covers cuDNN's RNNs too, which CNLRN has none of).

    Args:
        enabled (bool): True for TF32, False for IEEE float32.
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@contextmanager
def tf32_set_to(enabled: bool) -> Iterator[None]:
    """:func:`use_tf32` for the ``with`` block only; the flags are restored after it.

    Args:
        enabled (bool): True for TF32, False for IEEE float32.
    """
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    use_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def channels_last_on(speed: Speed, device: torch.device) -> bool:
    """Whether a network runs in NHWC memory order on ``device``: where ``speed`` asks, and always on the CPU.

    oneDNN's CPU convolutions run faster on NHWC maps than on NCHW ones
    (benchmarks/RESULTS.md), and the SR module keeps its activations NHWC
    in any case (its strips are), so NCHW weights would be reordered at
    every call. On a GPU the choice stays the user's.
    """
    return speed.channels_last or device.type == 'cpu'


def to_memory_format(net: nn.Module, speed: Speed, device: torch.device) -> nn.Module:
    """``net`` with its weights in channels_last order where :func:`channels_last_on`; its convolutions then
    output that order too."""
    return net.to(memory_format=torch.channels_last) if channels_last_on(speed, device) else net


def compiled(net, speed):
    """``net`` through torch.compile when asked, else ``net`` itself.

    The compiled wrapper shares ``net``'s parameters; keep ``net`` for state
    dicts, whose keys would otherwise gain an ``_orig_mod.`` prefix.
    """
    return torch.compile(net, **speed.compile) if speed.compile is not None else net
