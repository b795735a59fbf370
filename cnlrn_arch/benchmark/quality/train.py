"""Train and score one variant of the quality benchmark in this process.

Training goes through the model class of each variant's option file, as ``basicsr train``
does, so each variant is trained as its option file says (losses, frozen or
separately tuned deblurring module); the loop around it is BasicSR's, without
its logging, checkpoints and validation, so that the timings measure
training and inference only and compare across variants.
"""

import itertools
import logging
import tempfile
import time
from os import path as osp

import torch
from basicsr.models import build_model
from basicsr.utils import get_root_logger, tensor2img
from torch.utils.data import DataLoader
from tqdm import tqdm

from ...data.paired_blur_sr_dataset import PairedBlurSRDataset
from ...evaluation import score
from ...project import DEMO_JOINT, DEMO_PRETRAIN, SCALE
from .variants import load_option, pretrain_iterations, scaled_network

# fractions of the budget after which the held-out PSNR is measured (a learning curve);
# all fall into the joint stage of two-stage recipes
EVAL_FRACTIONS = (0.5, 0.75, 1.0)


def quiet_basicsr():
    """BasicSR logs every network's structure at INFO; the benchmark shows a progress bar instead."""
    get_root_logger().setLevel(logging.WARNING)


def demo_training():
    """Batch, patch, augmentation and seed of the demo's joint training, which every variant uses."""
    opt = load_option(DEMO_JOINT)
    train = opt['datasets']['train']
    return dict(
        batch=train['batch_size_per_gpu'],
        gt_size=train['gt_size'],
        use_hflip=train['use_hflip'],
        use_rot=train['use_rot'],
        seed=opt['manual_seed'],
    )


def training_batches(data, settings):
    """Endless batches of the demo training set, in the same order for every variant."""
    dataset = PairedBlurSRDataset(
        dict(
            phase='train',
            scale=SCALE,
            gt_size=settings['gt_size'],
            use_hflip=settings['use_hflip'],
            use_rot=settings['use_rot'],
            seed=settings['seed'],
            io_backend={'type': 'lmdb'},
            dataroot_gt=osp.join(data, 'train_sharp.lmdb'),
            dataroot_lq=osp.join(data, 'train_blur_bicubic_X4.lmdb'),
            dataroot_gt_lr=osp.join(data, 'train_sharp_bicubic_X4.lmdb'),
        )
    )
    generator = torch.Generator().manual_seed(settings['seed'])
    for epoch in itertools.count():
        dataset.set_epoch(epoch)
        yield from DataLoader(dataset, settings['batch'], shuffle=True, drop_last=True, generator=generator)


def model_options(option, demo_option, network, iters, device, deblur_weights=None):
    """Model options: the training recipe of ``option`` at the demo's learning rates, ``iters`` long."""
    recipe = load_option(option)
    train = recipe['train']
    demo = load_option(demo_option)['train']
    optim = dict(train['optim_g'], lr=demo['optim_g']['lr'])
    if 'lr_deblur' in optim:
        optim['lr_deblur'] = demo['optim_g']['lr_deblur']
    train.update(
        optim_g=optim, scheduler=dict(demo['scheduler'], periods=[iters]), total_iter=iters, warmup_iter=-1, ema_decay=0
    )
    return dict(
        model_type=recipe['model_type'],
        scale=SCALE,
        num_gpu=int(device.type == 'cuda'),
        is_train=True,
        dist=False,
        rank=0,
        world_size=1,
        network_g=network,
        train=train,
        path=dict(
            pretrain_network_g=None,
            strict_load_g=True,
            pretrain_network_deblur=deblur_weights,
            param_key_deblur='params',
        ),
    )


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


class Budget:
    """The iterations of one variant, spent stage after stage on the same batches.

    Times the training steps and scores the network on the validation images
    after the iterations in ``evaluate_at`` (untimed), into ``curve``.
    """

    def __init__(self, batches, val, device, bar):
        self.batches, self.val, self.device, self.bar = batches, val, device, bar
        self.done, self.seconds, self.curve = 0, 0.0, []

    def train(self, model, iters, evaluate_at=()):
        for local_iter in range(1, iters + 1):
            start = time.perf_counter()
            model.update_learning_rate(local_iter, warmup_iter=-1)
            model.feed_data(next(self.batches))
            model.optimize_parameters(local_iter)
            _sync(self.device)
            self.seconds += time.perf_counter() - start
            self.done += 1
            self.bar.update()
            if self.done in evaluate_at:
                self.curve.append((self.done, *evaluate(model, *self.val, self.device)))


def run_variant(variant, iters, data, val, device):
    """Train ``variant`` for ``iters`` iterations and score it; a row of quality.json.

    val: (network inputs, sharp HR uint8 images) of the held-out images.
    """
    settings = demo_training()
    network = scaled_network(variant)
    n_pretrain = pretrain_iterations(variant, iters)
    evaluate_at = {max(n_pretrain + 1, round(f * iters)) for f in EVAL_FRACTIONS}
    with tqdm(total=iters, desc=variant.name, unit='it', leave=False) as bar, tempfile.TemporaryDirectory() as tmp:
        budget = Budget(training_batches(data, settings), val, device, bar)
        deblur_weights = None
        if n_pretrain:
            torch.manual_seed(settings['seed'])
            predeblur = dict(
                type='CNLRNPreDeblur', n_feats=network['n_feats'], n_deblur_blocks=network['n_deblur_blocks']
            )
            model = build_model(model_options('pretrain.yml', DEMO_PRETRAIN, predeblur, n_pretrain, device))
            budget.train(model, n_pretrain)
            deblur_weights = osp.join(tmp, 'deblur.pth')
            torch.save({'params': model.get_bare_model(model.net_g).state_dict()}, deblur_weights)
        torch.manual_seed(settings['seed'])
        model = build_model(
            model_options(variant.option, DEMO_JOINT, network, iters - n_pretrain, device, deblur_weights)
        )
        budget.train(model, iters - n_pretrain, evaluate_at)
    _, psnr, ssim, infer_s = budget.curve[-1]
    return dict(
        name=variant.name,
        label=variant.label,
        group=variant.group,
        option=f'options/{variant.option}',
        network=network,
        params=sum(p.numel() for p in model.get_bare_model(model.net_g).parameters()),
        iters=iters,
        pretrain_iters=n_pretrain,
        psnr=psnr,
        ssim=ssim,
        train_s=budget.seconds,
        infer_s=infer_s,
        curve=[dict(iter=i, psnr=p, ssim=s) for i, p, s, _ in budget.curve],
        paper=variant.paper,
    )
