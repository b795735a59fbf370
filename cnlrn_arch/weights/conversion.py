"""Trained weights rewritten as ``.safetensors`` or ``.pth``, with the network's options inside."""

from __future__ import annotations

import os
from typing import Any

from cnlrn_arch.options.check import check_buildable
from cnlrn_arch.weights.files import describe_mismatch, write_checkpoint, write_safetensors
from cnlrn_arch.weights.loading import read_network_weights
from cnlrn_base.atomic import write_failure
from cnlrn_base.errors import UserError

# format name -> writer(state_dict, path, network_opt)
WRITERS = {'safetensors': write_safetensors, 'pth': write_checkpoint}


def export_weights(
    weights_path: str | os.PathLike, out_path: str | os.PathLike, fmt: str, opt_path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Write the weights of ``weights_path`` (``params_ema``, else ``params``) to ``out_path`` with their ``network_g``.

    The tensors are written as read, bit for bit, in the network's order: a ``.pth`` -> ``.safetensors``
    -> ``.pth`` round trip gives the same state dict (keys in the same order).

    Args:
        weights_path (str | os.PathLike): a PyTorch or ``.safetensors`` weights file.
        out_path (str | os.PathLike): the file to write (atomically).
        fmt (str): a key of WRITERS: 'safetensors' (options as JSON in the metadata) or 'pth'
            (BasicSR's checkpoint layout, options under ``network_g``).
        opt_path (str | os.PathLike | None): option file whose ``network_g`` describes the network;
            None takes the options stored in the weights, else reads them from the keys and shapes.

    Returns:
        dict[str, Any]: the options written.

    Raises:
        UserError: one line, if the weights cannot be read, their network cannot be told or they do not fit it.
    """
    weights, network_opt = read_network_weights(weights_path, opt_path)
    network_state = check_buildable(network_opt, weights_path).state_dict()
    mismatch = describe_mismatch(network_state, weights.state_dict)
    if mismatch:
        raise UserError(f'{weights_path}: weights do not fit {network_opt["type"]}: {mismatch}')
    # in the network's order, as its checkpoints list them (.safetensors files list keys sorted)
    state_dict = {key: weights.state_dict[key] for key in network_state}
    try:
        WRITERS[fmt](state_dict, out_path, network_opt)
    except OSError as err:
        raise UserError(write_failure(out_path, err)) from None
    return network_opt
