"""Write net_g_2.pth and 2.state here: the model of options.yml trained 2 iterations on seeded random batches.

Run from the repository root: ``.venv/bin/python tests/data/resume_v1/make_fixture.py``.
"""

import os

import torch
import yaml

import cnlrn_arch  # noqa: F401  isort:skip  (before basicsr)
from basicsr.models import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
ITERS = 2


def batch(generator):
    gt = torch.rand(2, 3, 32, 32, generator=generator)
    return dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt)


def main():
    with open(os.path.join(HERE, 'options.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt['path'] = dict(models=HERE, training_states=HERE)
    torch.manual_seed(0)
    model = build_model(opt)
    generator = torch.Generator().manual_seed(1)
    for it in range(1, ITERS + 1):
        model.update_learning_rate(it)  # as basicsr's runner does, before each iteration
        model.feed_data(batch(generator))
        model.optimize_parameters(it)
    model.save(0, ITERS)


if __name__ == '__main__':
    main()
