"""The EMA network moves by (1 - ema_decay) of the way towards the trained network each iteration."""

import torch
from basicsr.models import build_model

from tests.helpers import TINY_CNLRN, make_opt


def test_one_step_moves_the_ema_network_by_one_minus_decay():
    torch.manual_seed(0)
    model = build_model(make_opt(TINY_CNLRN, dict(ema_decay=0.9)))
    with torch.no_grad():
        for p in model.net_g_ema.parameters():
            p.add_(1.0)  # apart from net_g, so the step's direction shows
    before = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    gt = torch.rand(1, 3, 16, 16)
    model.feed_data(dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt))
    model.optimize_parameters(1)
    trained = model.net_g.state_dict()
    for key, value in model.net_g_ema.state_dict().items():
        torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * trained[key], msg=key)
