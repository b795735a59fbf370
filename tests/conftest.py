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
