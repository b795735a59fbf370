"""The ``cnlrn`` command: this project's own tools (demo, data preparation,
inference), one subcommand each."""
import argparse
import importlib
import sys

from .utils.cpu_allocator import use_fixed_mmap_threshold
from .utils.errors import UserError, user_message
from .version import __version__

# modules under cnlrn_arch/tools, each with add_parser(subparsers) that sets ``func``
TOOLS = ('demo', 'make_demo_data', 'infer', 'prepare_reds', 'prepare_dvd', 'bench', 'bench_quality')


def build_parser():
    parser = argparse.ArgumentParser(
        prog='cnlrn',
        description='Tools of the CNLRN BasicSR plugin. Training and testing run through '
        "BasicSR's runner: 'basicsr train -opt options/joint.yml'.")
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in TOOLS:
        importlib.import_module(f'{__package__}.tools.{name}').add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    use_fixed_mmap_threshold()
    try:
        return args.func(args)
    except UserError as err:
        print(f'cnlrn {args.command}: error: {user_message(err)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
