"""The ``basicsr`` command: ``basicsr train|test -opt X.yml [...]``, BasicSR's own pipelines with plugins loaded.

The pipeline's own arguments (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``) pass through to BasicSR; see :mod:`cnlrn_arch.training.pipeline`.
"""

import argparse
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog='basicsr',
        description='Run BasicSR training or testing from an option YAML, with all installed plugins loaded.',
        epilog="Run 'basicsr train --help' or 'basicsr test --help' for the pipeline's own options.",
    )
    parser.add_argument('phase', choices=['train', 'test'], help='which BasicSR pipeline to run')
    parser.add_argument('args', nargs=argparse.REMAINDER, help='arguments for that pipeline (-opt FILE ...)')
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        sys.exit(0 if argv else 2)
    phase = parser.parse_args(argv[:1]).phase
    from cnlrn_arch.training.pipeline import run_entry_point

    run_entry_point(phase, argv[1:], f'basicsr {phase}')


if __name__ == '__main__':
    main()
