"""Read network weights safely (``weights_only=True``) with errors that name the file."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .errors import UserError, first_line


def read_state_dict(path: str | os.PathLike, param_key: str | None = 'params') -> dict[str, torch.Tensor]:
    """Return the state dict stored in ``path``, on the CPU.

    Files with pickled code are refused, and so are tensors holding NaN or
    Inf: such weights make every output NaN (written as black) or garbage.
    Keys lose the ``module.`` prefix of DataParallel/DDP checkpoints.

    Args:
        path (str | os.PathLike): a bare state dict (the authors' release) or
            BasicSR's checkpoint layout ``{param_key: state_dict}``.
        param_key (str | None): the checkpoint's key to read; 'params_ema'
            falls back to 'params' where it is missing or empty. A file without
            the key is read as a bare state dict; with None the file must hold one.

    Raises:
        UserError: naming the file, if it is missing, empty, unreadable, holds
            code, holds no state dict or holds a non-finite tensor (named).
    """
    if not os.path.isfile(path):
        raise UserError(f'weights file not found: {path}')
    if os.path.getsize(path) == 0:
        raise UserError(f'{path}: empty file, not PyTorch weights')
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f'{path}: refused to load, not plain tensors (weights_only=True): {first_line(err)}') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(f'{path}: not a readable PyTorch weights file ({first_line(err)})') from None
    chosen = _state_dict_at(data, param_key) or (_state_dict_at(data, 'params') if param_key == 'params_ema' else None)
    if chosen:
        data = chosen
    elif isinstance(data, dict) and param_key in data:
        data = data[param_key]  # empty or no mapping: refused below
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(
            f'{path}: does not hold a state dict (param key {param_key!r}); '
            f'top-level keys: {list(data)[:5] if isinstance(data, dict) else type(data).__name__}'
        )
    _check_finite(data, path)
    # checkpoints of DataParallel/DDP models prefix every key with 'module.'
    return {k[len('module.') :] if k.startswith('module.') else k: v for k, v in data.items()}


def _check_finite(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise ``UserError`` naming ``path`` and the first tensor of ``state_dict`` that holds NaN or Inf.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the tensors to check.
        path (str | os.PathLike): the file they came from, for the message.
    """
    for key, value in state_dict.items():
        if value.is_floating_point() or value.is_complex():
            bad = value.numel() - int(torch.isfinite(value).sum())
            if bad:
                raise UserError(
                    f'{path}: {key} holds NaN or Inf ({bad} of {value.numel()} values); '
                    'refused, such weights give black or garbage outputs'
                )


def _state_dict_at(data: object, key: str | None) -> dict | None:
    """``data[key]`` where it is a non-empty mapping, else None."""
    value = data.get(key) if isinstance(data, dict) and key is not None else None
    return value if isinstance(value, dict) and value else None


def first_items(items: Sequence[str], limit: int = 5) -> str:
    """'a, b, c (+N more)': the first ``limit`` of ``items`` for a one-line message."""
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return f'{", ".join(items[:limit])}{more}'


def describe_mismatch(net_state: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor], limit: int = 5) -> str:
    """One line listing the first ``limit`` missing, unexpected and mis-shaped keys; '' when all fit.

    Args:
        net_state (Mapping[str, torch.Tensor]): the network's own state dict.
        loaded (Mapping[str, torch.Tensor]): the state dict to load into it.
        limit (int): keys listed per kind of mismatch.
    """
    missing = [k for k in net_state if k not in loaded]
    unexpected = [k for k in loaded if k not in net_state]
    shapes = [
        f'{k} {tuple(loaded[k].shape)} vs {tuple(net_state[k].shape)}'
        for k in net_state
        if k in loaded and loaded[k].shape != net_state[k].shape
    ]
    parts = []
    for label, items in (('missing', missing), ('unexpected', unexpected), ('shape (file vs network)', shapes)):
        if items:
            parts.append(f'{label}: {first_items(items, limit)}')
    return '; '.join(parts)


def load_into(
    net: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, strict: bool = True
) -> str:
    """``net.load_state_dict`` whose failure names the file and the first mismatched keys.

    Args:
        net (nn.Module): the network to load into.
        state_dict (Mapping[str, torch.Tensor]): e.g. from :func:`read_state_dict`.
        path (str | os.PathLike): the file ``state_dict`` came from, for messages.
        strict (bool): raise ``UserError`` on any mismatch; False loads the
            entries whose key and shape fit and leaves the rest of ``net`` as is.

    Returns:
        str: :func:`describe_mismatch`'s line, for the caller to report when not strict.
    """
    net_state = net.state_dict()
    mismatch = describe_mismatch(net_state, state_dict)
    if not strict:
        state_dict = {k: v for k, v in state_dict.items() if k in net_state and v.shape == net_state[k].shape}
    elif mismatch:
        raise UserError(f'{path}: weights do not fit {type(net).__name__}: {mismatch}')
    net.load_state_dict(state_dict, strict=strict)
    return mismatch
