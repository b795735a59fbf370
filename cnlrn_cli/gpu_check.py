"""``cnlrn gpu-check``."""

import shlex

from cnlrn_base.command_defaults import GPU_CHECK_DEADLINE_S
from cnlrn_cli.arguments import description, int_at_least


def add_arguments(parser):
    parser.description = description('cnlrn_tools.gpu_check.gpu_check')
    parser.add_argument('--out', required=True, metavar='DIR', help='folder for the reports, logs and work files')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='run the steps on the CPU with tiny sizes (automatic where CUDA is not available)',
    )
    parser.add_argument(
        '--deadline-s',
        type=int_at_least(10),
        default=GPU_CHECK_DEADLINE_S,
        metavar='S',
        help='seconds within which every step must be done (default: %(default)s)',
    )
    parser.add_argument(
        '--steps',
        nargs='+',
        metavar='NAME',
        help='run only these steps, with the steps they need (default: all; names in gpu_check.md)',
    )
    parser.set_defaults(run=run)


def run(args):
    from cnlrn_tools.gpu_check.gpu_check import gpu_check

    command = ['cnlrn', 'gpu-check', '--out', args.out, '--deadline-s', str(args.deadline_s)]
    command += ['--dry-run'] if args.dry_run else []
    command += ['--steps', *args.steps] if args.steps else []
    return gpu_check(args.out, args.dry_run, args.deadline_s, args.steps, shlex.join(command))
