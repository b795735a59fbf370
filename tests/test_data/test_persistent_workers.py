"""persistent_workers: true: workers keep their copy of the data set across epochs, yet augment for each epoch."""

import torch
from torch.utils.data import DataLoader

from cnlrn_arch.training.resume import ResumableSampler
from tests.test_data.test_dataset import make, reds  # noqa: F401  (the module fixture)


def test_persistent_workers_augment_for_the_epoch_they_serve(reds):  # noqa: F811
    dataset = make(reds, 'train', 'lmdb', seed=1)
    sampler = ResumableSampler(dataset, 1, 0)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=1, persistent_workers=True)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append(torch.cat([batch['lq'] for batch in loader]))
        expected = [dataset[sample]['lq'] for sample in sampler]  # (epoch, position) pairs, read in this process
        assert torch.equal(epochs[-1], torch.stack(expected))
    assert not torch.equal(epochs[0], epochs[1])  # not epoch 0's crops replayed
