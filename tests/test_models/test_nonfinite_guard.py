"""The non-finite guard on its own: which updates it lets through, how it counts, when it stops training."""

import pytest
import torch

from cnlrn_arch.models.nonfinite_guard import NonfiniteGuard, TrainingDiverged, all_finite


def parameters(*grads):
    """Parameters holding ``grads`` as their gradients (None: no gradient)."""
    params = []
    for grad in grads:
        param = torch.nn.Parameter(torch.zeros(3))
        param.grad = grad
        params.append(param)
    return params


FINITE = torch.tensor([1.0, -2.0, 0.5])
NAN = torch.tensor([1.0, float('nan'), 0.5])
INF = torch.tensor([float('inf'), 0.0, 0.0])


@pytest.mark.parametrize(
    'loss, grads, finite',
    [
        (1.0, (FINITE, FINITE), True),
        (1.0, (FINITE, None), True),  # a parameter without a gradient is not checked
        (1.0, (FINITE, NAN), False),
        (1.0, (INF, FINITE), False),
        (float('nan'), (FINITE,), False),
        (float('-inf'), (FINITE,), False),
    ],
)
def test_all_finite_checks_the_loss_and_every_gradient(loss, grads, finite):
    assert bool(all_finite(torch.tensor(loss), parameters(*grads))) is finite


def guard(patience=3):
    return NonfiniteGuard(patience, distributed=False, device=torch.device('cpu'))


def test_a_finite_update_resets_the_count():
    checked = guard()
    assert not checked.update_is_finite(torch.tensor(1.0), parameters(NAN))
    checked.skipped(1, {'l_pix': float('nan')}, torch.amp.GradScaler('cpu', enabled=False), None)
    assert checked.in_a_row == 1
    assert checked.update_is_finite(torch.tensor(1.0), parameters(FINITE))
    assert checked.in_a_row == 0


def test_skipped_updates_are_logged_and_the_patience_th_in_a_row_stops_training(basicsr_log):
    checked = guard(patience=2)
    scaler = torch.amp.GradScaler('cpu', enabled=True, init_scale=1024.0)
    checked.skipped(7, {'l_pix': float('nan'), 'l_grad': 0.25}, scaler, 'models/net_g_4.pth')
    assert (
        'iter 7: non-finite loss or gradient (l_pix=nan, l_grad=0.25); update skipped '
        '(1 in a row, fp16 loss scale now 1024)' in basicsr_log.text
    )
    with pytest.raises(TrainingDiverged) as err:
        checked.skipped(8, {'l_pix': float('inf')}, scaler, 'models/net_g_4.pth')
    assert str(err.value) == (
        'training stopped at iter 8 after 2 non-finite updates in a row; last good checkpoint: '
        'models/net_g_4.pth (lower the learning rate, then resume with --auto_resume)'
    )


def test_before_the_first_checkpoint_the_error_says_none_was_saved():
    checked = guard(patience=1)
    with pytest.raises(TrainingDiverged, match='last good checkpoint: none saved yet'):
        checked.skipped(1, {}, torch.amp.GradScaler('cpu', enabled=False), None)
