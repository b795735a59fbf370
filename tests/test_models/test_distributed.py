"""The distributed collaborator on its own: wrapping a network for the run's parallelism (DDP on CPU included) and
the check that every rank holds the same weights, in a one-process gloo group."""

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel

from cnlrn_arch.models.distributed import check_ranks_in_sync, wrap_for_parallel

CPU = torch.device('cpu')


@pytest.fixture
def one_rank_group(tmp_path):
    """A gloo process group of this process alone, destroyed afterwards."""
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_one_process_run_keeps_the_bare_network_and_several_gpus_get_data_parallel():
    net = torch.nn.Linear(2, 2)
    assert wrap_for_parallel(net, dict(dist=False, num_gpu=1), CPU) is net
    assert isinstance(wrap_for_parallel(net, dict(dist=False, num_gpu=2), CPU), DataParallel)


def test_distributed_data_parallel_wraps_a_network_on_the_cpu(one_rank_group):
    """basicsr's model_to_device asks torch.cuda for a device id, which fails on a machine without a GPU."""
    net = torch.nn.Linear(2, 2)
    wrapped = wrap_for_parallel(net, dict(dist=True, num_gpu=0), CPU)
    assert isinstance(wrapped, DistributedDataParallel) and wrapped.module is net
    assert wrapped.device_ids is None


def test_ranks_holding_the_same_weights_pass_and_others_stop_training(one_rank_group, basicsr_log, monkeypatch):
    weights = torch.nn.Linear(2, 2).state_dict()
    check_ranks_in_sync(weights, CPU, 4)
    assert 'iter 4: weights identical on all 1 ranks (sha256 prefix ' in basicsr_log.text

    def gather_from_a_rank_that_differs(gathered, local):
        gathered[0].copy_(local)
        gathered[1].copy_(255 - local)  # other bytes: 255 - b == b for no integer b

    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'all_gather', gather_from_a_rank_that_differs)
    with pytest.raises(RuntimeError, match=r'^iter 6: ranks hold different weights \(hashes \['):
        check_ranks_in_sync(weights, CPU, 6)
