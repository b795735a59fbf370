"""``cnlrn prepare-reds``."""

from os import path as osp

from cnlrn_arch.data_prep import reds

from .arguments import add_data_root_arguments, description


def add_arguments(parser):
    parser.description = description(reds)
    add_data_root_arguments(parser, osp.join('datasets', 'REDS'), 'folder of the extracted REDS archives')
    parser.set_defaults(run=run)


def run(args):
    reds.prepare_reds(args.root, args.workers)
