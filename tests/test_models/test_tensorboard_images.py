"""Validation images in TensorBoard (``val: {tb_images: N}``): blurry LR bicubic-upscaled | output | target."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils import tensor2img

from cnlrn_arch.models.tensorboard_images import DEFAULT_TB_IMAGES, side_by_side
from cnlrn_arch.options.check import check_options
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from tests.helpers import TINY_CNLRN, TINY_PREDEBLUR, derive_options, make_opt, make_tiny_reds, run_command

LR_H, LR_W = 6, 5
METRICS = dict(psnr=dict(type='calculate_psnr', crop_border=0, test_y_channel=False))


class FakeWriter:
    """Records SummaryWriter.add_image calls; takes the metric scalars too."""

    def __init__(self):
        self.images = []

    def add_image(self, tag, img, step, dataformats):
        self.images.append((tag, img, step, dataformats))

    def add_scalar(self, tag, value, step):
        pass


class Loader:
    """What SRModel's validation reads of a validation loader: batches of one image, ``dataset.opt['name']``."""

    def __init__(self, count, target_key='gt', scale=4):
        torch.manual_seed(0)
        self.dataset = SimpleNamespace(opt={'name': 'tiny_val'})
        self.batches = [
            {
                'lq': torch.rand(1, 3, LR_H, LR_W),
                target_key: torch.rand(1, 3, LR_H * scale, LR_W * scale),
                'lq_path': [f'val/blur/000_{i:08d}.png'],
            }
            for i in range(count)
        ]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def validate(val, loader=None, network=TINY_CNLRN, writer=None, iters=(2, 4)):
    """Validate a tiny model after each of ``iters``, sending to ``writer`` (a FakeWriter by default); the writer."""
    model = build_model(make_opt(network=network, val=dict(metrics=METRICS, **val)))
    writer = FakeWriter() if writer is None else writer
    for current_iter in iters:
        model.validation(loader or Loader(6), current_iter, writer)
    return writer


def test_the_first_images_of_each_validation_are_sent_side_by_side():
    images = validate(dict(tb_images=2)).images
    assert [(tag, step) for tag, _, step, _ in images] == [
        ('val_images/tiny_val/000_00000000', 2),
        ('val_images/tiny_val/000_00000001', 2),
        ('val_images/tiny_val/000_00000000', 4),
        ('val_images/tiny_val/000_00000001', 4),
    ]
    for _, img, _, dataformats in images:
        assert dataformats == 'HWC' and img.dtype == np.uint8
        assert img.shape == (4 * LR_H, 3 * 4 * LR_W, 3)


def test_by_default_a_few_images_are_sent():
    assert len(validate({}, iters=(2,)).images) == DEFAULT_TB_IMAGES


def test_zero_sends_none_and_no_tb_logger_is_no_crash():
    assert validate(dict(tb_images=0)).images == []
    model = build_model(make_opt(val=dict(metrics=METRICS, tb_images=2)))
    model.validation(Loader(2), 2, None)
    assert set(model.metric_results) == {'psnr'}


def test_pretraining_pictures_are_lr_sized():
    """CNLRNPreDeblur outputs the deblurred LR image and is compared with the sharp LR one (gt_lr)."""
    loader = Loader(2, target_key='gt_lr', scale=1)
    writer = validate(dict(tb_images=1), loader, network=TINY_PREDEBLUR, iters=(2,))
    assert [img.shape for _, img, _, _ in writer.images] == [(LR_H, 3 * LR_W, 3)]


@pytest.mark.parametrize('rank, sent', [(0, 1), (1, 0)])
def test_under_ddp_rank_0_sends_them(rank, sent):
    """basicsr gives rank 0 the one tb_logger; SRModel.dist_validation validates there only."""
    model = build_model(make_opt(val=dict(metrics=METRICS, tb_images=1)))
    model.opt.update(dist=True, rank=rank)
    writer = FakeWriter()
    model.validation(Loader(2), 2, writer)
    assert len(writer.images) == sent


def test_panels_are_the_upscaled_input_the_output_and_the_target_in_rgb():
    lq, output, gt = torch.zeros(1, 3, 4, 3), torch.rand(1, 3, 16, 12), torch.zeros(1, 3, 16, 12)
    lq[:, 0] = 1.0  # red
    gt[:, 2] = 1.0  # blue
    picture = side_by_side(lq, output, gt)
    assert picture.shape == (16, 36, 3)
    upscaled = bicubic_resize_uint8(tensor2img([lq], rgb2bgr=False), 4)
    assert np.array_equal(picture[:, :12], upscaled) and (picture[:, :12, 0] == 255).all()
    assert np.array_equal(picture[:, 12:24], tensor2img([output], rgb2bgr=False))
    assert (picture[:, 24:, 2] == 255).all() and (picture[:, 24:, :2] == 0).all()
    assert side_by_side(lq, output).shape == (16, 24, 3)  # no target: two panels


def test_a_summary_writer_event_file_holds_the_pictures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    validate(dict(tb_images=2), writer=writer)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert acc.Tags()['images'] == ['val_images/tiny_val/000_00000000', 'val_images/tiny_val/000_00000001']
    events = acc.Images('val_images/tiny_val/000_00000000')
    assert [(e.step, e.height, e.width) for e in events] == [(2, 4 * LR_H, 3 * 4 * LR_W), (4, 4 * LR_H, 3 * 4 * LR_W)]


@pytest.mark.parametrize('value', [-1, 2.0, True, '4'])
def test_tb_images_must_be_a_non_negative_int(tmp_path, value):
    opt = derive_options('options/joint.yml', tmp_path / 'o.yml', dict(num_gpu=0, val=dict(tb_images=value)))
    with pytest.raises(UserError, match=f'val:tb_images must be an integer >= 0, got {value!r}$'):
        check_options(opt, is_train=True)


@pytest.mark.slow
def test_basicsr_train_writes_the_pictures_to_its_tensorboard_log(tmp_path):
    """The real runner, a tiny CNLRN for 2 iterations validated after each, tb_logger on."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_tiny_reds(str(tmp_path / 'data'), val_frames=3)
    loader = dict(
        num_worker_per_gpu=0,
        batch_size_per_gpu=1,
        gt_size=32,
        dataroot_gt=data['train_sharp'],
        dataroot_lq=data['train_blur_bicubic_X4'],
    )
    changes = dict(
        name='tb_images',
        num_gpu=0,
        network_g=TINY_CNLRN,
        path=dict(pretrain_network_deblur=None),
        datasets=dict(train=loader, val=dict(dataroot_gt=data['val_sharp'], dataroot_lq=data['val_blur_bicubic_X4'])),
        train=dict(total_iter=2, scheduler=dict(periods=[2], restart_weights=[1])),
        val=dict(val_freq=1, tb_images=2),
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=True),
    )
    opt = derive_options('options/joint.yml', tmp_path / 'tb.yml', changes)
    result = run_command('basicsr', 'train', '-opt', opt, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = EventAccumulator(str(tmp_path / 'tb_logger/tb_images'))
    acc.Reload()
    assert acc.Tags()['images'] == ['val_images/Val300/000_00000000', 'val_images/Val300/000_00000001']
    events = acc.Images('val_images/Val300/000_00000000')
    # validated after iterations 1 and 2; basicsr's validation after the loop repeats 2's weights, so it is left out
    assert [e.step for e in events] == [1, 2]
    assert {(e.height, e.width) for e in events} == {(64, 3 * 96)}  # HR 64 x 96: bicubic | output | sharp HR
