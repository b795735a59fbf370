"""Speed options shared by ``RobustSRModel`` and ``cnlrn infer``: autocast, channels_last, torch.compile.

All are off by default, so a plain run computes in float32 on contiguous
tensors, exactly as before they existed. In option files they read::

    train:
      amp: ~                 # ~ or fp32 (float32), bf16 or fp16; fp16 trains with a gradient scaler
    val:
      amp: ~                 # validation and ``basicsr test``; ~ follows train:amp
    speed:
      channels_last: false   # network weights, and so its activations, in NHWC memory order
      compile: false         # true, or torch.compile's arguments: {mode, backend, dynamic, fullgraph}

Precision lives with the phase it changes (BasicSR keeps per-phase settings
in ``train`` and ``val``); ``speed`` changes how, not what, the network
computes, so one section serves training and testing alike.
"""

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

from .errors import UserError, first_line

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
# torch.compile's keyword arguments an option file may set, with the types each accepts
COMPILE_ARGS = {'mode': (str, type(None)), 'backend': (str,), 'dynamic': (bool, type(None)), 'fullgraph': (bool,)}


@dataclass(frozen=True)
class Speed:
    channels_last: bool = False
    compile: dict = None  # torch.compile's keyword arguments; None: not compiled


def amp_dtype(value, where):
    """The torch dtype of an amp option (~ or 'fp32', 'bf16', 'fp16'); None for float32."""
    if value is None or value == 'fp32':
        return None
    if value not in AMP_DTYPES:
        raise UserError(f"{where} must be ~ or 'fp32' (float32), 'bf16' or 'fp16', got {value!r}")
    return AMP_DTYPES[value]


def check_autocast(device_type, dtype, what):
    """Raise a UserError naming ``what`` if autocast to ``dtype`` does not work on ``device_type``.

    torch only warns, and then silently computes in float32, where a dtype is
    unsupported; a user who asked for it should know.
    """
    if dtype is None:
        return
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


def parse_speed(opt, prefix=''):
    """(train amp dtype, val amp dtype, :class:`Speed`) of a BasicSR option dict; UserError on bad values.

    ``prefix`` (an option file's path and ': ') starts each error message.
    """
    train_amp = amp_dtype((opt.get('train') or {}).get('amp'), f'{prefix}train:amp')
    val = opt.get('val') or {}
    val_amp = train_amp if val.get('amp') is None else amp_dtype(val['amp'], f'{prefix}val:amp')
    section = opt.get('speed') or {}
    if not isinstance(section, dict):
        raise UserError(f'{prefix}speed must be a mapping of channels_last and compile, got {section!r}')
    unknown = set(section) - {'channels_last', 'compile'}
    if unknown:
        raise UserError(f'{prefix}speed: unknown keys {sorted(unknown)}; known: channels_last, compile')
    channels_last = section.get('channels_last', False)
    if not isinstance(channels_last, bool):
        raise UserError(f'{prefix}speed:channels_last must be true or false, got {channels_last!r}')
    return train_amp, val_amp, Speed(channels_last, compile_args(section.get('compile'), f'{prefix}speed:compile'))


def to_memory_format(net, speed):
    """``net`` with its weights in channels_last order when asked; convolutions then output that order too."""
    return net.to(memory_format=torch.channels_last) if speed.channels_last else net


def compiled(net, speed):
    """``net`` through torch.compile when asked, else ``net`` itself.

    The compiled wrapper shares ``net``'s parameters; keep ``net`` for state
    dicts, whose keys would otherwise gain an ``_orig_mod.`` prefix.
    """
    return torch.compile(net, **speed.compile) if speed.compile is not None else net
