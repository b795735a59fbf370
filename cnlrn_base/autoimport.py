"""Import every module of a sub-package whose name ends in a suffix.

Each such module registers its classes in a BasicSR registry on import, so a
new network, data set, loss or model only needs a file with the right suffix.
"""

import importlib
import os


def import_modules(package, folder, suffix):
    """Import ``package.<name>`` for each ``<name><suffix>.py`` in ``folder``."""
    names = sorted(f[: -len('.py')] for f in os.listdir(folder) if f.endswith(f'{suffix}.py'))
    for name in names:
        importlib.import_module(f'{package}.{name}')
