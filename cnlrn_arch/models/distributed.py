"""Several ranks or GPUs: a network wrapped for DistributedDataParallel on CPU (gloo) as on CUDA, or for
DataParallel, and a check that every rank holds the same weights."""

import hashlib
from typing import Any

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from cnlrn_arch.weights.files import hash_tensors


def wrap_for_parallel(net: nn.Module, opt: dict[str, Any], device: torch.device) -> nn.Module:
    """``net`` wrapped as the run needs: DDP under ``dist`` (device ids only on CUDA), DataParallel for several GPUs.

    basicsr's BaseModel.model_to_device passes CUDA device ids always, which DDP refuses on CPU.

    Args:
        net (nn.Module): the bare network, on ``device``, its trainable parameters final.
        opt (dict[str, Any]): the run's options: ``dist``, ``num_gpu``, ``find_unused_parameters``.
        device (torch.device): the device of this rank.

    Returns:
        nn.Module: the wrapped network, or ``net`` itself in a one-process run on at most one GPU.
    """
    if opt['dist']:
        device_ids = [torch.cuda.current_device()] if device.type == 'cuda' else None
        return DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=opt.get('find_unused_parameters', False)
        )
    if opt['num_gpu'] > 1:
        return DataParallel(net)
    return net


def check_ranks_in_sync(state_dict: dict[str, torch.Tensor], device: torch.device, current_iter: int) -> None:
    """Compare a hash of this rank's weights with every other rank's; raise if they differ.

    Every rank of the process group must call it.

    Args:
        state_dict (dict[str, torch.Tensor]): this rank's network weights.
        device (torch.device): the device of the process group's tensors.
        current_iter (int): the iteration, for the log line and the error.

    Raises:
        RuntimeError: naming each rank's hash when they differ.
    """
    digest = hash_tensors(hashlib.sha256(), state_dict)
    local = torch.tensor(list(digest.digest()[:8]), dtype=torch.int64, device=device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    hashes = [bytes(t.tolist()).hex() for t in gathered]
    if len(set(hashes)) != 1:
        raise RuntimeError(f'iter {current_iter}: ranks hold different weights (hashes {hashes})')
    get_root_logger().info(
        f'iter {current_iter}: weights identical on all {len(hashes)} ranks (sha256 prefix {hashes[0]})'
    )
