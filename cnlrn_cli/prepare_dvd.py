"""``cnlrn prepare-dvd``."""

from os import path as osp

from cnlrn_arch.data_prep import dvd
from cnlrn_cli.arguments import data_prep_command

add_arguments = data_prep_command(
    dvd, dvd.prepare_dvd, osp.join('datasets', 'DVD'), 'folder holding the extracted quantitative_datasets'
)
