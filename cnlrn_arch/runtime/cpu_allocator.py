"""glibc malloc settings for CNLRN's large CPU feature maps.

PyTorch allocates CPU tensors with malloc. glibc's default raises its mmap
threshold each time a large block is freed (up to 32 MB), so feature maps
of a few MB to 32 MB (CNLRN's LR stage on a REDS frame) pile up in the heap
where freed blocks fragment and stay resident, while maps above 32 MB (the
2x stage) are mapped and unmapped for every tensor. A fixed threshold makes
every map of 4 MB or more an mmap of its own, returned whole when freed:
the resident peak then tracks the live tensors (measured on a REDS frame,
180x320 LR, as a library: 0.39 GB of activations instead of 0.60 GB). The
price is page faults: every such map is zeroed by the kernel when first
touched, about 7% of the frame's time on 2 cores (42.4 s against 39.3 s).
Importing ``cnlrn_arch`` applies it, so the commands and scripts that use
the library alike hold bounded memory.

The setting is left alone when the user chose one through glibc's
``MALLOC_MMAP_THRESHOLD_`` environment variable, and on other C libraries.
"""

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
MMAP_THRESHOLD_BYTES = 4 << 20


def use_fixed_mmap_threshold():
    """Apply the fixed threshold; True if it took effect."""
    if 'MALLOC_MMAP_THRESHOLD_' in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c'))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
