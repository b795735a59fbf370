"""``cnlrn prepare-reds``."""

from os import path as osp

from cnlrn_arch.data_prep import reds
from cnlrn_cli.arguments import data_prep_command

add_arguments = data_prep_command(
    reds, reds.prepare_reds, osp.join('datasets', 'REDS'), 'folder of the extracted REDS archives'
)
