"""Train and score one variant of the quality benchmark in this process, for a budget of iterations or seconds.

Training goes through the model class of each variant's option file, as ``basicsr train``
does, so each variant is trained as its option file says (losses, frozen or
separately tuned deblurring module, discriminator); the loop around it is
BasicSR's, without its logging, checkpoints and validation, so that the timings
measure training and inference only and compare across variants. The learning
rate follows the variant's recipe (:mod:`.recipes`) stretched over the budget.
"""

import itertools
import logging
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from os import path as osp

import torch
from basicsr.models import build_model
from basicsr.utils import get_root_logger, tensor2img
from torch.utils.data import DataLoader
from tqdm import tqdm

from cnlrn_arch.data.paired_blur_sr_dataset import PairedBlurSRDataset
from cnlrn_arch.models.robust_sr_model import RobustSRModel
from cnlrn_arch.reports.scores import score
from cnlrn_arch.runtime.speed import amp_dtype, autocast
from cnlrn_base.errors import UserError
from cnlrn_base.project import SCALE
from cnlrn_tools.quality.recipes import PRETRAIN_OPTION, lr_at, training_recipe
from cnlrn_tools.quality.variants import (
    BY_NAME,
    GAN_SHARE,
    PRETRAIN_SHARE,
    load_option,
    needs_pretraining,
    scaled_network,
)

# shares of the last stage's budget after which the held-out PSNR is measured (a learning curve)
EVAL_FRACTIONS = (0.5, 0.75, 1.0)


def quiet_basicsr():
    """BasicSR logs every network's structure at INFO; the benchmark shows a progress bar instead."""
    get_root_logger().setLevel(logging.WARNING)


@dataclass(frozen=True)
class Budget:
    """What each variant may spend on training: ``amount`` iterations (unit 'iters') or seconds (unit 's')."""

    unit: str
    amount: float

    def split(self, share):
        """(the first ``share`` of this budget, the rest); at least one iteration each."""
        first = share * self.amount
        if self.unit == 'iters':
            first = min(max(1, int(first)), self.amount - 1)
        return Budget(self.unit, first), Budget(self.unit, self.amount - first)

    def progress(self, iters, seconds):
        """The share of the budget that ``iters`` iterations taking ``seconds`` seconds have spent."""
        return min(1.0, (iters if self.unit == 'iters' else seconds) / self.amount)

    def text(self):
        return f'{self.amount:g} iterations' if self.unit == 'iters' else f'{self.amount:g} s of training'


@dataclass(frozen=True)
class Setup:
    """What every variant of one benchmark shares: data, held-out images, device and sizes.

    val: (network inputs, sharp HR uint8 images) of the scoring images; batch, gt_size: the
    batch and HR patch; amp: None or 'bf16'; full_size: networks as their option files have them.
    """

    data: str
    val: tuple
    device: torch.device
    batch: int
    gt_size: int
    use_hflip: bool = True
    use_rot: bool = True
    amp: str = None
    full_size: bool = False


def training_batches(setup, seed, gt_size=None):
    """Endless batches of the training LMDBs; ``seed`` decides their order and augmentation."""
    dataset = PairedBlurSRDataset(
        dict(
            phase='train',
            scale=SCALE,
            gt_size=gt_size or setup.gt_size,
            use_hflip=setup.use_hflip,
            use_rot=setup.use_rot,
            seed=seed,
            io_backend={'type': 'lmdb'},
            dataroot_gt=osp.join(setup.data, 'train_sharp.lmdb'),
            dataroot_lq=osp.join(setup.data, 'train_blur_bicubic_X4.lmdb'),
            dataroot_gt_lr=osp.join(setup.data, 'train_sharp_bicubic_X4.lmdb'),
        )
    )
    if len(dataset) < setup.batch:  # no full batch: the loop below would never yield
        raise UserError(f'{setup.data} has {len(dataset)} training images, fewer than the batch of {setup.batch}')
    generator = torch.Generator().manual_seed(seed)
    for epoch in itertools.count():
        dataset.set_epoch(epoch)
        yield from DataLoader(dataset, setup.batch, shuffle=True, drop_last=True, generator=generator)


def model_options(option, network, setup, recipe, lr_factor=1.0, deblur_weights=None, generator_weights=None):
    """Model options: the training section of ``option`` at ``recipe``'s rates times ``lr_factor``."""
    opt = load_option(option)
    train = opt['train']
    optim_g = dict(train['optim_g'], lr=recipe['lr'] * lr_factor)
    if recipe['lr_deblur'] is not None:
        optim_g['lr_deblur'] = recipe['lr_deblur'] * lr_factor
    train.update(
        optim_g=optim_g,
        scheduler=recipe['scheduler'],
        total_iter=recipe['total_iter'],
        warmup_iter=-1,
        ema_decay=0,  # every variant is scored as trained; an average over a short budget would lag behind it
        amp=setup.amp,
    )
    if 'optim_d' in train:
        train['optim_d'] = dict(train['optim_d'], lr=recipe['lr_d'] * lr_factor)
    options = dict(
        model_type=opt['model_type'],
        scale=SCALE,
        num_gpu=int(setup.device.type == 'cuda'),
        is_train=True,
        dist=False,
        rank=0,
        world_size=1,
        network_g=network,
        train=train,
        path=dict(
            pretrain_network_g=generator_weights,
            param_key_g='params',
            strict_load_g=True,
            pretrain_network_deblur=deblur_weights,
            param_key_deblur='params',
        ),
    )
    if 'network_d' in opt:
        options['network_d'] = opt['network_d']
    return options


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def evaluate(model, inputs, sharp, device):
    """(PSNR, SSIM, inference seconds per image) of ``model`` on the validation images."""
    restored, seconds = [], 0.0
    for lq in inputs:
        model.feed_data({'lq': lq})
        start = time.perf_counter()
        model.test()
        _sync(device)
        seconds += time.perf_counter() - start
        restored.append(tensor2img(model.output))
    return (*score(restored, sharp), seconds / len(inputs))


def set_learning_rates(model, recipe, progress):
    """Every parameter group's rate as the recipe's schedule has it after ``progress`` of the budget."""
    for optimizer in model.optimizers:
        for group in optimizer.param_groups:
            group['lr'] = lr_at(group['initial_lr'], recipe['scheduler'], recipe['total_iter'], progress)


def train_stage(model, batches, budget, recipe, setup, bar, evaluate_at=()):
    """Train ``model`` until ``budget`` is spent; a dict of iterations, seconds and the learning curve.

    The steps are timed (data loading included); the evaluations after the shares
    ``evaluate_at`` of the budget are not.
    """
    # RobustSRModel autocasts its forward pass itself (train.amp); BasicSR's GAN models know no such option
    dtype = amp_dtype(setup.amp, '--amp')
    precision = nullcontext if isinstance(model, RobustSRModel) else lambda: autocast(setup.device, dtype)
    pending = sorted(evaluate_at)
    iters, seconds, curve = 0, 0.0, []
    while budget.progress(iters, seconds) < 1:
        start = time.perf_counter()
        set_learning_rates(model, recipe, budget.progress(iters, seconds))
        model.feed_data(next(batches))
        with precision():
            model.optimize_parameters(iters + 1)
        _sync(setup.device)
        step = time.perf_counter() - start
        iters, seconds = iters + 1, seconds + step
        # a time budget's last step runs past it: tqdm would drop its total
        bar.update(min(1 if budget.unit == 'iters' else step, bar.total - bar.n))
        progress = budget.progress(iters, seconds)
        crossed = [share for share in pending if progress >= share]
        if crossed:  # a long step may cross several shares: one evaluation stands for each
            pending = pending[len(crossed) :]
            psnr, ssim, infer_s = evaluate(model, *setup.val, setup.device)
            curve += [
                dict(share=share, progress=progress, iter=iters, psnr=psnr, ssim=ssim, infer_s=infer_s)
                for share in crossed
            ]
    return dict(iters=iters, seconds=seconds, curve=curve)


def progress_bar(budget, desc):
    """A bar of the budget's iterations or seconds, in whole numbers."""
    return tqdm(
        total=budget.amount,
        desc=desc,
        unit='it' if budget.unit == 'iters' else 's',
        bar_format='{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}]',
        leave=False,
    )


def _save_generator(model, path):
    torch.save({'params': model.get_bare_model(model.net_g).state_dict()}, path)
    return path


def train_variant(variant, budget, setup, seed, lr_factor, tmp, bar, evaluate_at=EVAL_FRACTIONS):
    """Train ``variant`` for ``budget``, stage after stage; (the trained model, the stages' dicts by name).

    Two-stage recipes pre-train the deblurring module (``options/pretrain.yml``) for the first
    PRETRAIN_SHARE of the budget; fine-tunes (``init_from``) train their generator's variant for all
    but GAN_SHARE of it first. Only the last stage is evaluated.
    """
    network = scaled_network(variant, setup.full_size)
    recipe = training_recipe(variant.option, variant.recipe)
    stages = {}
    if variant.init_from:
        first, budget = budget.split(1 - GAN_SHARE)
        generator, stages = train_variant(BY_NAME[variant.init_from], first, setup, seed, lr_factor, tmp, bar, ())
        weights = _save_generator(generator, osp.join(tmp, f'{variant.init_from}.pth'))
        torch.manual_seed(seed)
        model = build_model(model_options(variant.option, network, setup, recipe, lr_factor, None, weights))
        # the discriminator sees patches of its own input size (BasicSR's ESRGAN recipe: HR 128)
        batches = training_batches(setup, seed, load_option(variant.option)['datasets']['train']['gt_size'])
        stages['gan'] = train_stage(model, batches, budget, recipe, setup, bar, evaluate_at)
        return model, stages
    batches = training_batches(setup, seed)
    deblur_weights = None
    if needs_pretraining(variant):
        pre_budget, budget = budget.split(PRETRAIN_SHARE)
        torch.manual_seed(seed)
        predeblur = dict(type='CNLRNPreDeblur', n_feats=network['n_feats'], n_deblur_blocks=network['n_deblur_blocks'])
        pre_recipe = training_recipe(PRETRAIN_OPTION)
        model = build_model(model_options(PRETRAIN_OPTION, predeblur, setup, pre_recipe, lr_factor))
        stages['pretrain'] = train_stage(model, batches, pre_budget, pre_recipe, setup, bar)
        deblur_weights = _save_generator(model, osp.join(tmp, 'deblur.pth'))
    torch.manual_seed(seed)
    model = build_model(model_options(variant.option, network, setup, recipe, lr_factor, deblur_weights))
    stages['train'] = train_stage(model, batches, budget, recipe, setup, bar, evaluate_at)
    return model, stages


def run_variant(variant, budget, setup, seed, lr_factor=1.0):
    """Train ``variant`` for ``budget`` from ``seed`` and score it: one run of a row of quality.json."""
    with (
        progress_bar(budget, f'{variant.name} seed {seed}') as bar,
        tempfile.TemporaryDirectory() as tmp,
    ):
        model, stages = train_variant(variant, budget, setup, seed, lr_factor, tmp, bar)
    last = list(stages.values())[-1]['curve']
    return dict(
        seed=seed,
        params=sum(p.numel() for p in model.get_bare_model(model.net_g).parameters()),
        psnr=last[-1]['psnr'],
        ssim=last[-1]['ssim'],
        infer_s=last[-1]['infer_s'],
        iters=sum(s['iters'] for s in stages.values()),
        train_s=sum(s['seconds'] for s in stages.values()),
        stages={name: dict(iters=s['iters'], seconds=s['seconds']) for name, s in stages.items()},
        curve=[{k: v for k, v in point.items() if k != 'infer_s'} for point in last],
    )
