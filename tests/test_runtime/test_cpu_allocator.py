"""The glibc malloc setting that importing cnlrn_arch (and so every command) applies."""

import os
import platform
import subprocess
import sys

import pytest

from cnlrn_arch.runtime import cpu_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt is glibc-only')
def test_fixed_threshold_applies_on_glibc(monkeypatch):
    monkeypatch.delenv('MALLOC_MMAP_THRESHOLD_', raising=False)
    assert cpu_allocator.use_fixed_mmap_threshold()


def test_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '131072')
    assert not cpu_allocator.use_fixed_mmap_threshold()


def test_importing_the_library_fixes_the_threshold_as_the_commands_do():
    """A user's script imports cnlrn_arch, not the commands: it holds the same bounded memory (issue 23)."""
    code = (
        'import ctypes, ctypes.util\n'
        'calls = []\n'
        'real_cdll = ctypes.CDLL\n'
        'class LibC:\n'
        '    def __init__(self, lib):\n'
        '        self.lib = lib\n'
        '    def mallopt(self, parameter, value):\n'
        '        calls.append((parameter, value))\n'
        '        return self.lib.mallopt(parameter, value)\n'
        'def cdll(name, *args, **kwargs):\n'
        '    lib = real_cdll(name, *args, **kwargs)\n'
        '    return LibC(lib) if name == ctypes.util.find_library("c") else lib\n'
        'ctypes.CDLL = cdll\n'
        'import cnlrn_arch\n'
        'from cnlrn_arch.runtime.cpu_allocator import M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES\n'
        'assert calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)], calls\n'
    )
    env = {k: v for k, v in os.environ.items() if k != 'MALLOC_MMAP_THRESHOLD_'}
    subprocess.run([sys.executable, '-c', code], check=True, env=env)
    # the user's own setting is left alone
    subprocess.run(
        [sys.executable, '-c', code.replace('[(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)]', '[]')],
        check=True,
        env=dict(env, MALLOC_MMAP_THRESHOLD_='131072'),
    )
