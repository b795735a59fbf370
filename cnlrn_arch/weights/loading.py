"""Weights loaded into the network they belong to: options from an option file, the file itself, or its shapes."""

from __future__ import annotations

import os
from typing import Any

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from cnlrn_arch.options.check import check_buildable, check_registered
from cnlrn_arch.weights.config_from_weights import describe_weights, network_options_from_weights
from cnlrn_arch.weights.files import Weights, describe_mismatch, load_into, read_weights
from cnlrn_base.errors import UserError
from cnlrn_base.option_file import load_option_file
from cnlrn_base.option_schema import check_schema
from cnlrn_base.stored_options import stored_options_source


def read_network_weights(
    weights_path: str | os.PathLike, opt_path: str | os.PathLike | None = None
) -> tuple[Weights, dict[str, Any]]:
    """The weights of ``weights_path`` (``params_ema``, else ``params``) and the ``network_g`` they belong to.

    The options are those of option file ``opt_path`` (checked before the weights are read), else
    those stored in the weights file, else read from its keys and shapes (see
    :mod:`~cnlrn_arch.weights.config_from_weights`).

    Args:
        weights_path (str | os.PathLike): a ``.safetensors`` file, a bare state dict (the
            authors' release) or a BasicSR checkpoint, whose ``params_ema`` (the
            averaged, usually better weights) is preferred to ``params``.
        opt_path (str | os.PathLike | None): an option file, or None.

    Raises:
        UserError: one line naming the file: it cannot be read, its options are missing,
            unregistered or cannot be built, or (without options) the keys fit no network
            this project knows.
    """
    network_opt = _checked(load_option_file(opt_path).get('network_g'), opt_path) if opt_path else None
    weights = read_weights(weights_path, 'params_ema')
    if network_opt is not None:
        return weights, network_opt
    if weights.network_opt is not None:
        return weights, _checked(weights.network_opt, stored_options_source(weights_path))
    network_opt = network_options_from_weights(weights.state_dict)
    mismatch = network_opt and describe_mismatch(
        check_buildable(network_opt, weights_path).state_dict(), weights.state_dict
    )
    if network_opt is None or mismatch:
        found = describe_weights(weights.state_dict) + (f'; as {network_opt["type"]}: {mismatch}' if mismatch else '')
        raise UserError(
            f'{weights_path}: cannot tell the network from the weights ({found}); '
            'pass --opt X.yml whose network_g describes it'
        )
    return weights, network_opt


def _checked(network_opt: Any, source: str | os.PathLike) -> dict[str, Any]:
    """``network_opt`` once it names a registered network that builds, or one line naming ``source``.

    The schema's types and size bounds come first: options stored in a weights file are checked before a
    network they describe is allocated.
    """
    check_schema({'network_g': network_opt}, source)
    check_registered(network_opt, ARCH_REGISTRY, 'network', 'network_g:', source)
    check_buildable(network_opt, f'{source}: network_g')
    return network_opt


def build_loaded(
    weights_path: str | os.PathLike, opt_path: str | os.PathLike | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The network of :func:`read_network_weights` holding the weights, and its options.

    Args:
        weights_path (str | os.PathLike): as in :func:`read_network_weights`.
        opt_path (str | os.PathLike | None): as in :func:`read_network_weights`; None takes
            the options stored in the weights file, else reads them from its keys and shapes.
    """
    weights, network_opt = read_network_weights(weights_path, opt_path)
    net = build_network(network_opt)
    load_into(net, weights.state_dict, weights_path)
    return net, network_opt
