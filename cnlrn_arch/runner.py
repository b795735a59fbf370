"""BasicSR's own train/test pipelines with the plugins loaded: what ``basicsr train|test`` and
``python -m cnlrn_arch.train|test`` run.

``run_entry_point('train', ['-opt', 'X.yml', ...])`` runs
``basicsr.train.train_pipeline`` with the current directory as root, so
``experiments/``, ``results/`` and ``tb_logger/`` appear where the user stands.
Before that it imports every package that declares itself in the
``basicsr.plugins`` entry-point group (this one first), so any BasicSR
plugin's networks, data sets, losses and models are available.
"""

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

from .utils.cpu_allocator import use_fixed_mmap_threshold
from .utils.errors import UserError, user_message

PLUGIN_GROUP = 'basicsr.plugins'
OWN_PLUGIN = 'cnlrn_arch'


def load_plugins():
    """Import this project, then every other registered BasicSR plugin."""
    importlib.import_module(OWN_PLUGIN)
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if entry.module != OWN_PLUGIN:
            importlib.import_module(entry.module)


def run_pipeline(phase, argv, prog):
    """Run BasicSR's ``phase`` pipeline ('train' or 'test') on BasicSR-style ``argv``."""
    load_plugins()
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from .utils import basicsr_patches
    from .utils.option_check import check_options

    basicsr_patches.apply()

    if not any(a in ('-h', '--help') for a in argv):
        check_options(_option_path(argv, prog), is_train=phase == 'train')
    # BasicSR's parse_options reads sys.argv itself
    sys.argv = [prog] + list(argv)
    pipeline = train_pipeline if phase == 'train' else test_pipeline
    pipeline(os.getcwd())


def _option_path(argv, prog):
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    parser.add_argument('-opt', required=True, help='Path to option YAML file.')
    known, _ = parser.parse_known_args(argv)
    return known.opt


def run_entry_point(phase, argv, prog):
    """Run a pipeline; user errors become one line on stderr and exit code 2."""
    use_fixed_mmap_threshold()
    try:
        run_pipeline(phase, argv, prog)
    except UserError as err:
        print(f'{prog}: error: {user_message(err)}', file=sys.stderr)
        sys.exit(2)
