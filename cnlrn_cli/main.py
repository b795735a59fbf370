"""The ``cnlrn`` command: this project's tools, one subcommand a module of this package.

A subcommand's module is imported only when it is chosen, so ``cnlrn --help``
and ``cnlrn --version`` answer without importing torch.
"""

import argparse
import importlib
import sys
from importlib.metadata import version

# subcommand -> (its module in this package, one line for ``cnlrn --help``)
COMMANDS = {
    'demo': ('demo', 'train and test a small CNLRN on the embedded demo data (CPU)'),
    'make-demo-data': ('make_demo_data', 'make a small REDS-like set from the photographs shipped with scikit-image'),
    'infer': ('infer', 'super-resolve blurry LR images x4 with trained weights'),
    'export': ('export', 'write trained weights as .safetensors, .pth or ONNX, with the network options inside'),
    'prepare-reds': ('prepare_reds', 'build the REDS training LMDBs and the Val300 set'),
    'prepare-dvd': ('prepare_dvd', 'build the DVD100 test set'),
    'bench': ('bench', "measure CNLRN's speed and memory against the FLOP floor"),
    'bench-quality': (
        'bench_quality',
        'train CNLRN, its ablations and the baselines on an equal budget; compare quality',
    ),
    'gpu-check': ('gpu_check', 'the GPU acceptance check: every CUDA path in one command (--dry-run: on the CPU)'),
    'serve': ('serve', 'a web page (Gradio) to restore an uploaded image in a browser'),
}


def chosen_command(argv):
    """The subcommand named in ``argv`` (its first word that is not an option), or None."""
    return next((arg for arg in argv if not arg.startswith('-')), None)


def build_parser(chosen=None):
    """The ``cnlrn`` parser; only the ``chosen`` subcommand's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog='cnlrn',
        description='Tools of the CNLRN BasicSR plugin. Training and testing run through '
        "BasicSR's runner: 'basicsr train -opt options/joint.yml'.",
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {version("cnlrn_arch")}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module, summary) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == chosen:
            importlib.import_module(f'{__package__}.{module}').add_arguments(subparser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from cnlrn_base.errors import UserError, user_message

    try:
        return args.run(args) or 0
    except UserError as err:
        print(f'cnlrn {args.command}: error: {user_message(err)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # a subcommand may re-raise Ctrl-C with what it finished
        print(f'cnlrn {args.command}: interrupted{f"; {err}" if str(err) else ""}', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
