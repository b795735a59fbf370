"""``cnlrn prepare-dvd``."""

from os import path as osp

from cnlrn_arch.data_prep import dvd

from .arguments import add_workers_argument, description


def add_arguments(parser):
    parser.description = description(dvd)
    parser.add_argument(
        '--root',
        default=osp.join('datasets', 'DVD'),
        help='folder holding the extracted quantitative_datasets (default: %(default)s)',
    )
    add_workers_argument(parser)
    parser.set_defaults(run=run)


def run(args):
    dvd.prepare_dvd(args.root, args.workers)
