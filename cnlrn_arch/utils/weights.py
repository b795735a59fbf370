"""Read network weights safely (``weights_only=True``) with errors that name the file."""

import os
import pickle

import torch

from .errors import UserError


def read_state_dict(path, param_key='params'):
    """Return the state dict stored in ``path``.

    Accepts a bare state dict (the authors' release) or BasicSR's checkpoint
    layout ``{param_key: state_dict}``; with ``param_key`` None the file must
    hold a bare state dict. Files with pickled code are refused.
    """
    if not os.path.isfile(path):
        raise UserError(f'weights file not found: {path}')
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0]
        raise UserError(f'{path}: refused to load, not plain tensors (weights_only=True): {reason}') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(f'{path}: not a readable PyTorch weights file ({str(err).splitlines()[0]})') from None
    if param_key is not None and isinstance(data, dict) and param_key in data:
        data = data[param_key]
    elif param_key == 'params_ema' and isinstance(data, dict) and 'params' in data:
        data = data['params']
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(
            f'{path}: does not hold a state dict (param key {param_key!r}); '
            f'top-level keys: {list(data)[:5] if isinstance(data, dict) else type(data).__name__}'
        )
    # checkpoints of DataParallel/DDP models prefix every key with 'module.'
    return {k[len('module.') :] if k.startswith('module.') else k: v for k, v in data.items()}


def first_items(items, limit=5):
    """'a, b, c (+N more)': the first ``limit`` of ``items`` for a one-line message."""
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return f'{", ".join(items[:limit])}{more}'


def describe_mismatch(net_state, loaded, limit=5):
    """One line listing the first missing, unexpected and mis-shaped keys."""
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


def load_into(net, state_dict, path, strict=True):
    """``net.load_state_dict`` whose failure names the file and the first mismatched keys."""
    net_state = net.state_dict()
    mismatch = describe_mismatch(net_state, state_dict)
    if not strict:
        state_dict = {k: v for k, v in state_dict.items() if k in net_state and v.shape == net_state[k].shape}
    elif mismatch:
        raise UserError(f'{path}: weights do not fit {type(net).__name__}: {mismatch}')
    net.load_state_dict(state_dict, strict=strict)
    return mismatch
