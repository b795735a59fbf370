"""The glibc malloc setting the cnlrn and basicsr commands apply."""

import platform

import pytest

from cnlrn_arch.utils import cpu_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt is glibc-only')
def test_fixed_threshold_applies_on_glibc(monkeypatch):
    monkeypatch.delenv('MALLOC_MMAP_THRESHOLD_', raising=False)
    assert cpu_allocator.use_fixed_mmap_threshold()


def test_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '131072')
    assert not cpu_allocator.use_fixed_mmap_threshold()
