"""Fixtures shared by the test folders; the helpers are in tests/helpers.py."""

import sys

import cv2
import pytest
import torch

from tests.helpers import TINY_CNLRN, exit_status, noise, tiny_net


@pytest.fixture
def one_thread():
    """One torch thread, as helpers.ENV gives processes: on tiny tensors more threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def basicsr_logger():
    """basicsr's logger, set up outside every test's capsys.

    Its stream handler writes to the stderr it was made with, and capsys closes its own after the test.
    """
    from basicsr.utils import get_root_logger

    return get_root_logger()


@pytest.fixture
def basicsr_log(caplog, monkeypatch, basicsr_logger):
    """caplog receiving basicsr's INFO records: get_root_logger stops them propagating to caplog's handler."""
    monkeypatch.setattr(basicsr_logger, 'propagate', True)
    with caplog.at_level('INFO', logger='basicsr'):
        yield caplog


@pytest.fixture
def run_basicsr(monkeypatch, basicsr_logger):
    """``basicsr ARGS...`` in this process; returns its exit status.

    The runner points sys.argv at its arguments for BasicSR's parse_options: restored after the test.
    """
    from cnlrn_cli.basicsr_runner import main

    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    return lambda *args: exit_status(main, [str(a) for a in args])


@pytest.fixture(scope='module')
def infer_setup(tmp_path_factory):
    """A folder with a tiny CNLRN's weights (w.pth), its option file (tiny.yml) and a 12x20 image (x.png)."""
    root = tmp_path_factory.mktemp('infer')
    torch.save({'params': tiny_net().state_dict()}, root / 'w.pth')
    (root / 'tiny.yml').write_text(f'network_g: {TINY_CNLRN}\n')
    cv2.imwrite(str(root / 'x.png'), noise((12, 20, 3)))
    return root
