"""CNLRN for BasicSR: importing this package registers its networks, data sets,
losses and models in BasicSR's registries.

Before anything imports torch, it makes OpenMP's threads wait passively
(see :mod:`.runtime.openmp`: on a busy machine spinning threads stall every
operator); and it fixes glibc's mmap threshold for the process (see
:mod:`.runtime.cpu_allocator`; ``MALLOC_MMAP_THRESHOLD_`` in the environment
keeps the user's choice), so that a script importing the library holds the
same bounded feature-map memory as the ``cnlrn`` and ``basicsr`` commands.
"""

# first, in this order: openmp sets OpenMP's wait policy before torch is loaded, compat makes basicsr importable
from cnlrn_arch.runtime import openmp  # noqa: F401  isort:skip
from cnlrn_base import compat  # noqa: F401  isort:skip
from cnlrn_arch import archs, data, losses, models  # noqa: F401
from cnlrn_arch.runtime.cpu_allocator import use_fixed_mmap_threshold
from cnlrn_arch.version import __version__  # noqa: F401

use_fixed_mmap_threshold()
