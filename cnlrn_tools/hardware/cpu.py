"""What machine a benchmark ran on, for its report."""

import platform
from os import path as osp


def cpu_name():
    """The CPU model as /proc/cpuinfo names it (Linux), else what platform knows."""
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


# the SIMD and matrix extensions that decide which kernels the GEMM libraries run
SIMD_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile')


def cpu_flags():
    """The SIMD_FLAGS this CPU has, space-separated, as /proc/cpuinfo lists them ('' where it cannot tell)."""
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('flags'):
                    present = set(line.split(':', 1)[1].split())
                    return ' '.join(flag for flag in SIMD_FLAGS if flag in present)
    return ''
