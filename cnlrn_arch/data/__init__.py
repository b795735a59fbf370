"""Data sets: importing a ``*_dataset.py`` module here registers it in DATASET_REGISTRY."""

from os import path as osp

from cnlrn_base.autoimport import import_modules

import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')
