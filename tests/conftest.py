"""Fixtures shared by the test folders; the helpers are in tests/helpers.py."""

import cv2
import pytest
import torch

from tests.helpers import TINY_CNLRN, exit_status, noise, tiny_net


def pytest_addoption(parser):
    parser.addoption(
        '--reverse-order',
        action='store_true',
        help='run the collected tests last to first: a test that needs an earlier one to run first fails',
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption('--reverse-order'):
        items.reverse()


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
def run_basicsr(basicsr_logger):
    """``basicsr ARGS...`` in this process; returns its exit status.

    Each run leaves sys.argv and basicsr's attributes as it found them: the overrides end with the run.
    """
    from cnlrn_cli.basicsr_runner import main

    return lambda *args: exit_status(main, [str(a) for a in args])


@pytest.fixture
def basicsr_overrides():
    """basicsr as ``basicsr train|test`` runs it (cnlrn_arch.training.basicsr_overrides swapped in) during the
    test, basicsr's own attributes again after it; yields the AppliedOverrides."""
    from cnlrn_arch.training import basicsr_overrides

    with basicsr_overrides.apply() as applied:
        yield applied


@pytest.fixture(scope='module')
def infer_setup(tmp_path_factory):
    """A folder with a tiny CNLRN's weights (w.pth), its option file (tiny.yml) and a 12x20 image (x.png)."""
    root = tmp_path_factory.mktemp('infer')
    torch.save({'params': tiny_net().state_dict()}, root / 'w.pth')
    (root / 'tiny.yml').write_text(f'network_g: {TINY_CNLRN}\n')
    cv2.imwrite(str(root / 'x.png'), noise((12, 20, 3)))
    return root
