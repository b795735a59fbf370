"""The ``basicsr`` command: ``basicsr train|test -opt X.yml [...]``, BasicSR's own pipelines with plugins loaded.

The pipeline's own arguments (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``) pass through to BasicSR; see :mod:`cnlrn_arch.training.pipeline`.
"""

import argparse
import sys

from cnlrn_base.errors import exit_on_user_error
from cnlrn_base.option_file import load_option_file
from cnlrn_base.pipeline_arguments import pipeline_parser


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
    prog = f'basicsr {phase}'
    # bounded before torch and the plugins are imported (most of a gigabyte): a "billion laughs" costs megabytes
    with exit_on_user_error(prog):
        load_option_file(pipeline_parser(prog).parse_args(argv[1:]).opt)
    from cnlrn_arch.training.pipeline import run_entry_point

    run_entry_point(phase, argv[1:], prog)


if __name__ == '__main__':
    main()
