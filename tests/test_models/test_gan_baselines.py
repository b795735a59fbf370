"""options/baselines/esrgan.yml and cnlrn_gan.yml: BasicSR's ESRGANModel trains them on tiny data (perceptual term
off, as no test downloads VGG19) with a discriminator that takes CNLRN's channels-last output, and a missing VGG19
file is one line from the option check."""

import os

import pytest
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY

from cnlrn_arch.archs.contiguous_discriminator_arch import ContiguousVGGStyleDiscriminator
from cnlrn_arch.options.check import check_options
from cnlrn_arch.options.vgg_weights import VGG19_URL, vgg19_weight_paths
from cnlrn_base.errors import UserError
from tests.helpers import (
    REPO_DIR,
    TINY_CNLRN,
    assert_one_line_error,
    deep_update,
    derive_options,
    make_tiny_reds,
    run_command,
)

TINY_GENERATORS = {
    'esrgan': dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4),
    'cnlrn_gan': TINY_CNLRN,
}
TINY_D = dict(num_feat=4)  # VGGStyleDiscriminator keeps its 128x128 input


def gan_option(name):
    with open(os.path.join(REPO_DIR, 'options', 'baselines', f'{name}.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Training pairs of 128x128 HR (the discriminator's input size)."""
    return make_tiny_reds(str(tmp_path_factory.mktemp('gan') / 'data'), clips=1, frames=2, hr_size=(128, 128))


def test_both_follow_basicsrs_esrgan_recipe():
    for name in TINY_GENERATORS:
        opt = gan_option(name)
        train = opt['train']
        assert opt['model_type'] == 'ESRGANModel' and opt['network_d']['type'] == 'ContiguousVGGStyleDiscriminator'
        assert train['optim_g']['lr'] == train['optim_d']['lr'] == 1e-4
        assert train['scheduler'] == dict(type='MultiStepLR', milestones=[50000, 100000, 200000, 300000], gamma=0.5)
        assert train['pixel_opt']['loss_weight'] == 1e-2 and train['gan_opt']['loss_weight'] == 5e-3
        assert train['perceptual_opt']['layer_weights'] == {'conv5_4': 1}
        assert opt['datasets']['train']['gt_size'] == opt['network_d']['input_size'] == 128
        assert opt['path']['pretrain_network_g']  # a fine-tune of a trained generator
    assert gan_option('esrgan')['network_g'] == {**gan_option('esrgan')['network_g'], 'type': 'RRDBNet'}
    with open(os.path.join(REPO_DIR, 'options', 'joint.yml'), encoding='utf-8') as f:
        assert gan_option('cnlrn_gan')['network_g'] == yaml.safe_load(f)['network_g']


@pytest.mark.parametrize('name', list(TINY_GENERATORS))
def test_trains_from_its_generator_without_the_perceptual_term(name, tiny_data, tmp_path):
    opt = gan_option(name)
    del opt['train']['perceptual_opt']
    generator = TINY_GENERATORS[name]
    torch.manual_seed(0)
    args = dict(generator)
    trained = ARCH_REGISTRY.get(args.pop('type'))(**args).state_dict()
    torch.save({'params': trained}, tmp_path / 'generator.pth')
    deep_update(
        opt,
        dict(
            num_gpu=0,
            dist=False,
            rank=0,
            world_size=1,
            is_train=True,
            network_g=generator,
            network_d=TINY_D,
            path=dict(pretrain_network_g=str(tmp_path / 'generator.pth')),
            train=dict(ema_decay=0),
        ),
    )
    opt['network_g'] = generator
    dataset = build_dataset(
        dict(
            opt['datasets']['train'],
            phase='train',
            scale=4,
            dataroot_gt=tiny_data['train_sharp'],
            dataroot_lq=tiny_data['train_blur_bicubic_X4'],
        )
    )
    model = build_model(opt)
    assert type(model).__name__ == 'ESRGANModel'
    net_g, net_d = model.get_bare_model(model.net_g), model.get_bare_model(model.net_d)
    assert all(torch.equal(v, trained[k]) for k, v in net_g.state_dict().items())  # started from the generator
    d_before = {k: v.clone() for k, v in net_d.state_dict().items()}
    for it in (1, 2):
        model.feed_data(torch.utils.data.default_collate([dataset[0], dataset[1]]))
        model.optimize_parameters(it)
    log = model.get_current_log()
    assert {'l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake'} <= set(log) and 'l_g_percep' not in log
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert any(not torch.equal(v, trained[k]) for k, v in net_g.state_dict().items())
    assert any(not torch.equal(v, d_before[k]) for k, v in net_d.state_dict().items())


@pytest.fixture
def no_vgg19(tmp_path, monkeypatch):
    """A working directory and torch hub without VGG19's weights."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    assert not any(os.path.exists(p) for p in vgg19_weight_paths())
    return tmp_path


def test_the_discriminator_takes_channels_last_images_as_basicsrs_takes_contiguous_ones():
    torch.manual_seed(0)
    ours = ContiguousVGGStyleDiscriminator(num_in_ch=3, num_feat=4, input_size=128)
    basicsrs = ARCH_REGISTRY.get('VGGStyleDiscriminator')(num_in_ch=3, num_feat=4, input_size=128)
    basicsrs.load_state_dict(ours.state_dict())  # the same keys: checkpoints of either load into the other
    images = torch.rand(2, 3, 128, 128)
    with pytest.raises(RuntimeError, match='view'):
        basicsrs(images.to(memory_format=torch.channels_last))
    assert torch.equal(ours(images.to(memory_format=torch.channels_last)), basicsrs(images))


@pytest.mark.parametrize('name', list(TINY_GENERATORS))
def test_missing_vgg19_is_one_line_from_the_option_check(name, no_vgg19):
    path = os.path.join(REPO_DIR, 'options', 'baselines', f'{name}.yml')
    with pytest.raises(UserError) as err:
        check_options(path, is_train=True, overrides=['num_gpu=0'])
    local, cache = vgg19_weight_paths()
    message = str(err.value)
    assert message.startswith(f"{path} with --force_yml: train:perceptual_opt: the perceptual loss needs torchvision's")
    assert '\n' not in message and local in message and cache in message and VGG19_URL in message
    (no_vgg19 / 'torch/hub/checkpoints').mkdir(parents=True)
    (no_vgg19 / 'torch/hub/checkpoints/vgg19-dcbb9e9d.pth').touch()  # where torchvision caches it
    assert check_options(path, is_train=True, overrides=['num_gpu=0'])['name']


@pytest.mark.slow
def test_basicsr_train_without_vgg19_is_one_line(no_vgg19, tiny_data):
    opt = derive_options(
        'options/baselines/esrgan.yml',
        no_vgg19 / 'esrgan.yml',
        dict(
            num_gpu=0,
            network_g=TINY_GENERATORS['esrgan'],
            path=dict(pretrain_network_g=None),
            datasets=dict(
                train=dict(dataroot_gt=tiny_data['train_sharp'], dataroot_lq=tiny_data['train_blur_bicubic_X4']),
                val=dict(dataroot_gt=tiny_data['val_sharp'], dataroot_lq=tiny_data['val_blur_bicubic_X4']),
            ),
        ),
    )
    result = run_command('basicsr', 'train', '-opt', opt, cwd=no_vgg19, TORCH_HOME=str(no_vgg19 / 'torch'))
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    # basicsr logs the networks it built before the losses on stderr; the error is the last line
    last = result.stderr.strip().splitlines()[-1]
    assert_one_line_error(
        last,
        f"basicsr train: error: {opt}: train:perceptual_opt: the perceptual loss needs torchvision's VGG19",
        VGG19_URL,
    )
