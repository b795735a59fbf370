"""Read and write network weights safely (``weights_only=True``) with errors that name the file.

Weights come as PyTorch files (a bare state dict or BasicSR's checkpoint layout) or as
``.safetensors`` files; both may carry the network's options (``network_g``) as plain data.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from cnlrn_base.atomic import atomic_torch_save, atomic_write
from cnlrn_base.errors import UserError, first_line
from cnlrn_base.optional import import_optional
from cnlrn_base.stored_options import NETWORK_OPT_KEY, SAFETENSORS_SUFFIX, options_from_json


class Weights(NamedTuple):
    """A state dict and the options of the network it belongs to, when the file holds them."""

    state_dict: dict[str, torch.Tensor]
    network_opt: dict[str, Any] | None


def read_weights(path: str | os.PathLike, param_key: str | None = 'params') -> Weights:
    """The state dict stored in ``path`` (on the CPU) and the ``network_g`` options stored beside it.

    Files with pickled code are refused, and so are tensors holding NaN or
    Inf: such weights make every output NaN (written as black) or garbage.
    Keys lose the ``module.`` prefix of DataParallel/DDP checkpoints.

    Args:
        path (str | os.PathLike): a ``.safetensors`` file, a bare state dict (the
            authors' release) or BasicSR's checkpoint layout ``{param_key: state_dict}``.
        param_key (str | None): the checkpoint's key to read; 'params_ema'
            falls back to 'params' where it is missing or empty. A file without
            the key is read as a bare state dict; with None the file must hold one.
            A ``.safetensors`` file holds one state dict: the key is unused.

    Raises:
        UserError: naming the file, if it is missing, empty, unreadable, holds
            code, holds no state dict or holds a non-finite tensor (named).
    """
    if not os.path.isfile(path):
        raise UserError(f'weights file not found: {path}')
    if os.path.getsize(path) == 0:
        raise UserError(f'{path}: empty file, not PyTorch weights')
    if str(path).endswith(SAFETENSORS_SUFFIX):
        data, network_opt = _read_safetensors(path)
    else:
        data, network_opt = _read_torch_file(path, param_key)
    _check_values(data, path)
    # checkpoints of DataParallel/DDP models prefix every key with 'module.'
    state_dict = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in data.items()}
    return Weights(state_dict, network_opt)


def read_state_dict(path: str | os.PathLike, param_key: str | None = 'params') -> dict[str, torch.Tensor]:
    """The state dict of :func:`read_weights`.

    Args:
        path (str | os.PathLike): as in :func:`read_weights`.
        param_key (str | None): as in :func:`read_weights`.
    """
    return read_weights(path, param_key).state_dict


def _read_torch_file(path: str | os.PathLike, param_key: str | None) -> tuple[dict, dict | None]:
    """The state dict at ``param_key`` of PyTorch file ``path`` and its ``network_g``, or raise ``UserError``."""
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f'{path}: refused to load, not plain tensors (weights_only=True): {first_line(err)}') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(f'{path}: not a readable PyTorch weights file ({first_line(err)})') from None
    network_opt = _state_dict_at(data, NETWORK_OPT_KEY)
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
    return data, network_opt


def _read_safetensors(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """The tensors of ``.safetensors`` file ``path`` and the ``network_g`` of its metadata, or raise ``UserError``."""
    safetensors = import_optional('safetensors', '.safetensors weights')
    try:
        with safetensors.safe_open(str(path), framework='pt', device='cpu') as f:
            data = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118  (safe_open is not iterable)
            metadata = f.metadata() or {}
    except (safetensors.SafetensorError, OSError) as err:
        raise UserError(f'{path}: not a readable safetensors file ({first_line(err)})') from None
    if not data:
        raise UserError(f'{path}: holds no tensors, not network weights')
    network_opt = options_from_json(metadata[NETWORK_OPT_KEY], path) if NETWORK_OPT_KEY in metadata else None
    return data, network_opt


def write_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, network_opt: Mapping[str, Any] | None = None
) -> None:
    """Write ``state_dict`` to the ``.safetensors`` file ``path`` atomically, ``network_opt`` as JSON in its metadata.

    Args:
        state_dict (Mapping[str, torch.Tensor]): e.g. from :func:`read_weights`.
        path (str | os.PathLike): the file to write.
        network_opt (Mapping[str, Any] | None): the network's options (``network_g``), plain data.
    """
    safetensors_torch = import_optional('safetensors.torch', '.safetensors weights')
    metadata = {NETWORK_OPT_KEY: json.dumps(plain_data(network_opt))} if network_opt else None
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write(path, safetensors_torch.save(tensors, metadata=metadata))


def write_checkpoint(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, network_opt: Mapping[str, Any] | None = None
) -> None:
    """Write ``state_dict`` to ``path`` atomically in BasicSR's layout ``{'params': ..., 'network_g': ...}``.

    Args:
        state_dict (Mapping[str, torch.Tensor]): e.g. from :func:`read_weights`.
        path (str | os.PathLike): the ``.pth`` file to write.
        network_opt (Mapping[str, Any] | None): the network's options, stored when given.
    """
    checkpoint = {'params': dict(state_dict)}
    if network_opt:
        checkpoint[NETWORK_OPT_KEY] = plain_data(network_opt)
    atomic_torch_save(checkpoint, path)


def plain_data(value: Any) -> Any:
    """``value`` as dicts, lists, str, int, float, bool and None only: loadable with ``weights_only=True``, JSON-able.

    Args:
        value (Any): options as BasicSR hands them (OrderedDicts, tuples...).

    Raises:
        TypeError: for a value of any other type.
    """
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f'not plain data: {value!r} ({type(value).__name__})')


def _check_values(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise ``UserError`` naming ``path`` and the first tensor of ``state_dict`` that is not finite floating point.

    Integer tensors are refused (loading casts them silently into the network's floats) except batch-norm step
    counters, which are integers in every network that has them.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the tensors to check.
        path (str | os.PathLike): the file they came from, for the message.
    """
    for key, value in state_dict.items():
        if not value.is_floating_point():
            if key.endswith('num_batches_tracked'):
                continue
            raise UserError(f'{path}: {key} holds {str(value.dtype).removeprefix("torch.")} values, not weights')
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


def hash_tensors(digest: Any, state: Mapping[str, torch.Tensor]) -> Any:
    """Feed the bytes of every tensor of the state dict ``state``, in order, to the hashlib object ``digest``.

    Returns:
        Any: ``digest``, updated.
    """
    for tensor in state.values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest
