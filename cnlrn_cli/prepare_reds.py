"""``cnlrn prepare-reds``."""

from os import path as osp

from cnlrn_arch.data_prep import reds

from .arguments import add_workers_argument, description


def add_arguments(parser):
    parser.description = description(reds)
    parser.add_argument(
        '--root',
        default=osp.join('datasets', 'REDS'),
        help='folder of the extracted REDS archives (default: %(default)s)',
    )
    add_workers_argument(parser)
    parser.set_defaults(run=run)


def run(args):
    reds.prepare_reds(args.root, args.workers)
