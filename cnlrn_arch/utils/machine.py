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
