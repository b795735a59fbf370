"""``cnlrn prepare-dvd``."""

from os import path as osp

from cnlrn_arch.data_prep import dvd

from .arguments import add_data_root_arguments, description


def add_arguments(parser):
    parser.description = description(dvd)
    add_data_root_arguments(parser, osp.join('datasets', 'DVD'), 'folder holding the extracted quantitative_datasets')
    parser.set_defaults(run=run)


def run(args):
    dvd.prepare_dvd(args.root, args.workers)
