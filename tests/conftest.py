import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(TESTS_DIR, 'data')
VENV_BIN = os.path.dirname(sys.executable)


@pytest.fixture
def data_dir():
    return DATA_DIR


def command(name):
    """Path of a console script installed beside the running interpreter."""
    return os.path.join(VENV_BIN, name)

REPO_DIR = os.path.dirname(TESTS_DIR)
TINY_CNLRN = dict(type='CNLRN', n_deblur_blocks=1, n_nlrgs_body=1, n_nlrgs_up1=1, n_nlrgs_up2=1, n_subgroups=1,
                  n_rcabs=1, n_feats=16)
TINY_PREDEBLUR = dict(type='CNLRNPreDeblur', n_feats=16, n_deblur_blocks=1)


def deep_update(base, changes):
    """Recursively merge ``changes`` into ``base`` (a value None deletes the key)."""
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def derive_options(repo_option, dst, changes):
    """Write ``dst``: the project's option file ``repo_option`` with ``changes`` merged in."""
    import yaml
    with open(os.path.join(REPO_DIR, repo_option), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    with open(dst, 'w', encoding='utf-8') as f:
        yaml.safe_dump(deep_update(opt, changes), f, sort_keys=False)
    return str(dst)
