"""OpenMP's threads wait passively once cnlrn_arch is imported before torch, as every command does (issue 23).

libgomp reports its settings itself (``OMP_DISPLAY_ENV=VERBOSE``): a spin count of 0 is the passive policy.
"""

import os
import subprocess
import sys

import pytest

from cnlrn_arch.runtime import openmp


def libgomp_spin_count(code, **env):
    """GOMP_SPINCOUNT as libgomp reports it when ``code`` runs in a fresh interpreter with ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    result = subprocess.run(
        [sys.executable, '-c', code],
        env=dict(base, OMP_DISPLAY_ENV='VERBOSE', **env),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if 'GOMP_SPINCOUNT' in line]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0].split('=')[1].strip().strip("'")


@pytest.mark.parametrize(
    'code, env, spin',
    [
        ('import cnlrn_arch', {}, '0'),  # passive: threads sleep at once
        ('import cnlrn_arch.archs', {}, '0'),  # a submodule imports the package first
        ('import torch, cnlrn_arch', {}, '300000'),  # torch came first: libgomp's default stands
        ('import cnlrn_arch', {'OMP_WAIT_POLICY': 'ACTIVE'}, '30000000000'),  # the user's own choice is kept
    ],
)
def test_the_wait_policy_libgomp_runs(code, env, spin):
    assert libgomp_spin_count(code, **env) == spin


def test_the_policy_is_not_set_once_torch_is_loaded(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    assert 'torch' in sys.modules  # this test process imported it
    assert not openmp.use_passive_wait_policy() and 'OMP_WAIT_POLICY' not in os.environ
