"""``cnlrn prepare-dvd``."""

from os import path as osp

from cnlrn_cli.arguments import data_prep_command


def prepare(root, workers):
    """Build the DVD100 test set from ``root`` with ``workers`` processes."""
    from cnlrn_arch.data_prep.dvd import prepare_dvd

    prepare_dvd(root, workers)


add_arguments = data_prep_command(
    'cnlrn_arch.data_prep.dvd',
    prepare,
    osp.join('datasets', 'DVD'),
    'folder holding the extracted quantitative_datasets',
)
