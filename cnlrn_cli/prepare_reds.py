"""``cnlrn prepare-reds``."""

from os import path as osp

from cnlrn_cli.arguments import data_prep_command


def prepare(root, workers):
    """Build the REDS LMDBs and Val300 from ``root`` with ``workers`` processes."""
    from cnlrn_arch.data_prep.reds import prepare_reds

    prepare_reds(root, workers)


add_arguments = data_prep_command(
    'cnlrn_arch.data_prep.reds', prepare, osp.join('datasets', 'REDS'), 'folder of the extracted REDS archives'
)
