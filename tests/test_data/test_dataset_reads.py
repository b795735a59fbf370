"""PairedBlurSRDataset decodes only what a stage reads: no HR frame in pre-training, no sharp LR in joint training."""

import pytest
import torch

from cnlrn_base.errors import UserError
from tests.test_data.test_dataset import make, reds  # noqa: F401  (the module fixture)


class ReadLog:
    """Wraps the dataset's file client and records which roots it was asked for."""

    def __init__(self, client):
        self.client, self.clients = client, []

    def get(self, path, client):
        self.clients.append(client)
        return self.client.get(path, client)


def logged_sample(dataset, index):
    dataset[0]  # opens the file client
    dataset.file_client = log = ReadLog(dataset.file_client)
    return dataset[index], log.clients


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_pretraining_never_decodes_the_hr_frame(reds, backend):  # noqa: F811
    full, reads_all = logged_sample(make(reds, 'train', backend, seed=3), 4)
    partial, reads = logged_sample(make(reds, 'train', backend, seed=3, with_gt=False), 4)
    assert sorted(reads_all) == ['gt', 'gt_lr', 'lq'] and sorted(reads) == ['gt_lr', 'lq']
    assert 'gt' not in partial and partial['gt_path'] == full['gt_path']
    # the same crop and flips as with the HR frame read
    for name in ('lq', 'gt_lr'):
        assert torch.equal(partial[name], full[name]), name


def test_joint_training_never_decodes_the_sharp_lr_frame(reds):  # noqa: F811
    sample, reads = logged_sample(make(reds, 'train', 'lmdb', with_gt_lr=False), 1)
    assert sorted(reads) == ['gt', 'lq'] and 'gt_lr' not in sample


def test_without_hr_needs_the_sharp_lr_root(reds):  # noqa: F811
    with pytest.raises(UserError, match='with_gt: false needs dataroot_gt_lr'):
        make(reds, 'train', gt_lr=False, with_gt=False)
