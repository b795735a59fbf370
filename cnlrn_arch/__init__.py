"""CNLRN for BasicSR: importing this package registers its networks, data sets,
losses and models in BasicSR's registries."""

# compat must come first: it makes basicsr 1.4.2 importable with current torchvision
from . import compat  # noqa: F401  isort:skip
from . import archs, data, losses, models  # noqa: F401
from .version import __version__  # noqa: F401
