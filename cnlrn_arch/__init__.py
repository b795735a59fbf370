"""CNLRN for BasicSR: importing this package registers its networks, data sets,
losses and models in BasicSR's registries.

It also fixes glibc's mmap threshold for the process (see
:mod:`.utils.cpu_allocator`; ``MALLOC_MMAP_THRESHOLD_`` in the environment
keeps the user's choice), so that a script importing the library holds the
same bounded feature-map memory as the ``cnlrn`` and ``basicsr`` commands.
"""

# compat must come first: it makes basicsr 1.4.2 importable with current torchvision
from . import compat  # noqa: F401  isort:skip
from . import archs, data, losses, models  # noqa: F401
from .utils.cpu_allocator import use_fixed_mmap_threshold
from .version import __version__  # noqa: F401

use_fixed_mmap_threshold()
