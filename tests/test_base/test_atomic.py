"""cnlrn_base.atomic: a save that fails half-way leaves the old file under its name, and no temporary file.

tests/test_models/test_model.py fails a checkpoint of a model the same way; tests/test_pipeline/test_interruptions.py
a whole training's.
"""

import os

import pytest
import torch

from cnlrn_base.atomic import atomic_torch_save, write_failure
from tests.helpers import disk_fills_half_way


def test_a_save_failing_half_way_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_latest.pth'
    atomic_torch_save({'params': {'w': torch.zeros(1000)}}, path)
    disk_fills_half_way(monkeypatch)

    with pytest.raises(OSError) as err:
        atomic_torch_save({'params': {'w': torch.ones(1000)}}, path)

    assert os.listdir(tmp_path) == ['net_g_latest.pth']
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.zeros(1000))
    message = write_failure(str(path), err.value)
    assert message.startswith(f'cannot write {path}: No space left on device on the disk of {tmp_path} (')
    assert message.endswith(' MiB free)')


def test_other_write_errors_name_the_file_and_the_reason():
    missing = '/nonexistent/net_g_2.pth'
    with pytest.raises(OSError) as err:
        atomic_torch_save({}, missing)
    assert write_failure(missing, err.value) == f'cannot write {missing}: No such file or directory'
