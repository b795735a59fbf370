"""Each variant's training recipe (learning rate, schedule shape, losses) and where it is published.

Baselines that BasicSR ships take BasicSR's own recipe for them; CNLRN, its
ablations and the cascades keep this project's option files, which follow the
authors' release. A recipe's schedule, written for ``total_iter`` iterations,
is stretched over the benchmark's budget: the learning rate after a share p of
the budget (iterations or seconds) is the recipe's at iteration p x total_iter.
"""

import math
from dataclasses import dataclass

from cnlrn_arch.options.check import load_option_file
from cnlrn_base.project import option_path

BASICSR_OPTIONS = 'https://github.com/XPixelGroup/BasicSR/blob/master/options/train/'
PRETRAIN_OPTION = 'pretrain.yml'  # the release's stage 1, the pre-training of every two-stage recipe
# --lr-sweep: these multiples of each recipe's learning rates
SWEEP_FACTORS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Recipe:
    """A published training recipe: what replaces the option file's learning rate and schedule.

    lr: Adam's learning rate; scheduler: BasicSR's ``train.scheduler`` for ``total_iter`` iterations;
    source: where it is published.
    """

    lr: float
    scheduler: dict
    total_iter: int
    source: str


# BasicSR's own recipes for the networks it ships; the losses are the option files' (L1, as BasicSR's)
BASICSR_RECIPES = {
    'RCAN': Recipe(
        1e-4,
        dict(type='MultiStepLR', milestones=[200000], gamma=0.5),
        300000,
        BASICSR_OPTIONS + 'RCAN/train_RCAN_x2.yml',
    ),
    'RRDBNet': Recipe(
        2e-4,
        dict(type='CosineAnnealingRestartLR', periods=[250000] * 4, restart_weights=[1] * 4, eta_min=1e-7),
        1000000,
        BASICSR_OPTIONS + 'ESRGAN/train_RRDBNet_PSNR_x4.yml',
    ),
}
RELEASE_NOTE = {
    'joint.yml': " (the authors' release)",
    'pretrain.yml': " (the authors' release)",
    'baselines/esrgan.yml': ', from ' + BASICSR_OPTIONS + 'ESRGAN/train_ESRGAN_x4.yml',
    'baselines/cnlrn_gan.yml': ', from ' + BASICSR_OPTIONS + 'ESRGAN/train_ESRGAN_x4.yml',
}


def loss_text(train):
    """The losses of a ``train`` section, weighted: '1 x L1Loss + 0.1 x GradientLoss'."""
    terms = []
    for key, loss in train.items():
        if key.endswith('_opt') and isinstance(loss, dict):
            weight = loss.get('perceptual_weight', loss.get('loss_weight', 1.0))
            name = f'{loss["gan_type"]} GAN' if loss['type'] == 'GANLoss' else loss['type']
            terms.append(f'{weight:g} x {name}')
    return ' + '.join(terms)


def training_recipe(option, recipe=None):
    """Learning rates, schedule, losses and source of the option file ``option`` (under ``options/``).

    Args:
        option (str): the option file.
        recipe (Recipe | None): a published recipe whose rate and schedule replace the file's.

    Returns:
        dict: lr, lr_deblur (or None), lr_d (the discriminator's, or None), scheduler, total_iter,
        loss (text) and source (text).
    """
    train = load_option_file(option_path(option))['train']
    scheduler, total_iter = train['scheduler'], train['total_iter']
    lr = train['optim_g']['lr']
    source = f'`options/{option}`{RELEASE_NOTE.get(option, "")}'
    if recipe is not None:
        lr, scheduler, total_iter, source = recipe.lr, recipe.scheduler, recipe.total_iter, recipe.source
    return dict(
        lr=lr,
        lr_deblur=train['optim_g'].get('lr_deblur'),
        lr_d=train.get('optim_d', {}).get('lr'),
        scheduler=dict(scheduler),
        total_iter=total_iter,
        loss=loss_text(train),
        source=source,
    )


def lr_at(base_lr, scheduler, total_iter, progress):
    """The learning rate BasicSR's ``scheduler`` gives ``base_lr`` at iteration ``progress`` x ``total_iter``.

    Args:
        base_lr (float): the rate the schedule starts from.
        scheduler (dict): ``train.scheduler``: MultiStepLR (milestones, gamma) or CosineAnnealingRestartLR
            (periods, restart_weights, eta_min).
        total_iter (int): the iterations the schedule was written for.
        progress (float): the share of the budget spent, in [0, 1].
    """
    it = progress * total_iter
    if scheduler['type'] == 'MultiStepLR':
        return base_lr * scheduler.get('gamma', 0.1) ** sum(it >= m for m in scheduler['milestones'])
    if scheduler['type'] == 'CosineAnnealingRestartLR':
        periods, eta_min = scheduler['periods'], scheduler.get('eta_min', 0)
        it, start = min(it, sum(periods)), 0
        for i, (period, weight) in enumerate(zip(periods, scheduler['restart_weights'])):
            if it < start + period or i == len(periods) - 1:
                return eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (it - start) / period))
            start += period
    raise ValueError(f'no closed form for scheduler {scheduler["type"]}')


def schedule_text(scheduler, total_iter):
    """The schedule's shape over the budget, in words."""
    if scheduler['type'] == 'MultiStepLR':
        shares = ', '.join(f'{m / total_iter:.0%}' for m in scheduler['milestones'])
        return f'x{scheduler.get("gamma", 0.1):g} at {shares} of the budget'
    periods = len(scheduler['periods'])
    weights = ', '.join(f'{w:g}' for w in scheduler['restart_weights'])
    cycles = f'{periods} cosine cycles (peaks {weights})' if periods > 1 else 'cosine'
    return f'{cycles} down to {scheduler.get("eta_min", 0):g}'
