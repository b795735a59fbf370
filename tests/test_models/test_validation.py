"""The validation collaborator on its own: which validations run, numbered how, and the restoration of a test."""

import torch

from cnlrn_arch.models.validation import ValidationRuns, restore


def runs(is_train=True, total_iter=10):
    return ValidationRuns(dict(is_train=is_train, train=dict(total_iter=total_iter), dist=False))


def test_each_iteration_and_data_set_is_validated_once_and_past_total_iter_counts_as_total_iter():
    validations = runs()
    called = []
    for name, it in (('a', 5), ('a', 5), ('b', 5), ('a', 11), ('a', 10)):
        validations.run(lambda current_iter, name=name: called.append((name, current_iter)), name, it)
    assert called == [('a', 5), ('b', 5), ('a', 10)]


def test_testing_keeps_the_iteration_it_is_given():
    """``basicsr test`` has no training loop: its iteration is not a count past total_iter."""
    validations, called = runs(is_train=False), []
    validations.run(called.append, 'a', 12)
    assert called == [12]


def test_restore_returns_float32_without_gradients_and_leaves_the_training_mode_as_it_was():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    net.train()
    seen = []

    def run(x):
        seen.append((net.training, torch.is_grad_enabled(), torch.is_autocast_enabled('cpu')))
        return net(x)

    lq = torch.rand(1, 3, 6, 8)
    output = restore(net, run, lq, torch.bfloat16, use_ensemble=False)
    assert seen == [(False, False, True)] and net.training
    assert output.dtype == torch.float32 and not output.requires_grad
    assert (output - net(lq)).abs().max() < 2e-2  # bf16 keeps 8 significant bits
    ensemble = restore(net, run, lq, None, use_ensemble=True)
    assert seen[1:] == [(False, False, False)] * 8
    assert not torch.allclose(ensemble, net(lq), atol=1e-4)  # a convolution of random weights is no rotation's
