"""Losses: importing a ``*_loss.py`` module here registers it in LOSS_REGISTRY."""

from os import path as osp

from cnlrn_base.autoimport import import_modules

import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_loss')
