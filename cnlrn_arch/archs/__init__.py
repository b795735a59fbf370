"""Networks: importing a ``*_arch.py`` module here registers it in ARCH_REGISTRY."""

from os import path as osp

from cnlrn_base.autoimport import import_modules

import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_arch')
