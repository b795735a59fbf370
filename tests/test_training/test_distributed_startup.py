"""cnlrn_arch.training.distributed_startup.init_dist as basicsr's parse_options calls it, the overrides applied."""

import os
import subprocess
from datetime import timedelta

import basicsr.utils.options
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cnlrn_arch.training import basicsr_overrides


@pytest.fixture
def no_process_group(monkeypatch):
    """The process groups init_dist would start, recorded instead; no GPU, this process's start method kept."""
    groups = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(mp, 'set_start_method', lambda method: None)
    # a process group of several ranks would wait for the others
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: groups.append(kwargs))
    return groups


def test_init_dist_from_slurm_on_cpu_uses_gloo_and_slurm_ranks(no_process_group, basicsr_overrides, monkeypatch):
    for name in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    # the fourth of 8 tasks, the second on its node
    for name, value in dict(SLURM_PROCID='3', SLURM_NTASKS='8', SLURM_LOCALID='1', SLURM_NODELIST='n[1-4]').items():
        monkeypatch.setenv(name, value)
    queries = []
    monkeypatch.setattr(subprocess, 'getoutput', lambda command: queries.append(command) or 'n1')  # no scontrol here

    basicsr.utils.options.init_dist('slurm', port=29612)  # as parse_options calls it with dist_params

    assert queries == ['scontrol show hostname n[1-4] | head -n1']
    assert no_process_group == [dict(backend='gloo', timeout=timedelta(minutes=60))]  # not torch's 10
    assert {
        name: os.environ[name] for name in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK')
    } == dict(MASTER_ADDR='n1', MASTER_PORT='29612', WORLD_SIZE='8', RANK='3', LOCAL_RANK='1')


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_init_dist_waits_as_long_as_the_options_say(launcher, no_process_group, monkeypatch):
    """basicsr hands dist_params to init_dist under slurm only: the options' timeout holds under both."""
    monkeypatch.setattr(subprocess, 'getoutput', lambda command: 'n1')
    for name, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0', SLURM_NODELIST='n1').items():
        monkeypatch.setenv(name, value)
    dist_params = {'port': 29612, 'timeout_minutes': 90}

    with basicsr_overrides.apply({'dist_params': dist_params}):
        basicsr.utils.options.init_dist(launcher, **(dist_params if launcher == 'slurm' else {}))

    assert no_process_group == [dict(backend='gloo', timeout=timedelta(minutes=90))]
