"""Make basicsr 1.4.2 importable with current torchvision.

basicsr 1.4.2 (the last release on PyPI) imports
``torchvision.transforms.functional_tensor``, a private module torchvision
removed in 0.17. The one function it takes from there, ``rgb_to_grayscale``,
lives on in ``torchvision.transforms.functional``, so we register that module
under the old name. This must run before anything imports basicsr, which is
why ``cnlrn_arch/__init__.py`` imports it first. Nothing in site-packages is
edited.
"""

import importlib
import sys

_REMOVED = 'torchvision.transforms.functional_tensor'


def install():
    """Alias the removed torchvision module; harmless when it still exists."""
    if _REMOVED in sys.modules:
        return
    try:
        importlib.import_module(_REMOVED)
    except ModuleNotFoundError:
        sys.modules[_REMOVED] = importlib.import_module('torchvision.transforms.functional')


install()
