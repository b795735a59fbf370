"""Models: importing a ``*_model.py`` module here registers it in MODEL_REGISTRY."""

from os import path as osp

from cnlrn_base.autoimport import import_modules

import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_model')
