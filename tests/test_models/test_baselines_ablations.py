"""Ablation switches of CNLRN, the DeblurSRCascade arch, and every baseline/ablation option file."""

import glob
import os

import pytest
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.archs.deblur_sr_cascade_arch import DeblurSRCascade
from tests.helpers import REPO_DIR, TINY_CNLRN_ARGS, TINY_PREDEBLUR_ARGS, deep_update, make_tiny_reds

TINY_SR = {
    'CNLRN': TINY_CNLRN_ARGS,
    'RCAN': dict(num_feat=16, num_group=1, num_block=1),
    'RRDBNet': dict(num_feat=16, num_block=1, num_grow_ch=8),
}


@pytest.mark.parametrize(
    'switches, absent',
    [
        (dict(with_deblur=False), 'DeblurNet.'),
        (dict(nonlocal_block=False), 'nonlocal_block'),
        (dict(upsampling='post'), None),
    ],
)
def test_ablation_switches_shapes_and_keys(switches, absent):
    net = CNLRN(**TINY_CNLRN_ARGS, **switches).eval()
    default_keys = set(CNLRN(**TINY_CNLRN_ARGS).state_dict())
    keys = set(net.state_dict())
    if absent is None:
        assert keys == default_keys  # post-upsampling reorders the same modules
    else:
        assert not any(absent in k for k in keys) and keys < default_keys | {'head.weight', 'head.bias'}
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 17, 23)).shape == (1, 3, 68, 92)


def test_post_upsampling_changes_the_computation():
    torch.manual_seed(0)
    progressive = CNLRN(**TINY_CNLRN_ARGS).eval()
    post = CNLRN(**TINY_CNLRN_ARGS, upsampling='post').eval()
    post.load_state_dict(progressive.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert not torch.allclose(progressive(x), post(x), atol=1e-4)


def test_bad_upsampling_value():
    with pytest.raises(ValueError, match='upsampling must be one of'):
        CNLRN(**TINY_CNLRN_ARGS, upsampling='pre')


def test_cascade_outputs_sr_of_deblurred_image():
    net = DeblurSRCascade(
        dict(type='RCAN', num_in_ch=3, num_out_ch=3, upscale=4, **TINY_SR['RCAN']), n_feats=8, n_deblur_blocks=1
    ).eval()
    x = torch.rand(1, 3, 13, 18)
    with torch.inference_mode():
        expected = net.SRNet(CNLRNPreDeblur.forward(net, x))
        assert torch.equal(net(x), expected) and expected.shape == (1, 3, 52, 72)
    with pytest.raises(ValueError, match="type 'Nope' is not a registered network"):
        DeblurSRCascade(dict(type='Nope'))


OPTION_FILES = sorted(
    glob.glob(os.path.join(REPO_DIR, 'options', 'baselines', '*.yml'))
    + glob.glob(os.path.join(REPO_DIR, 'options', 'ablations', '*.yml'))
)
# GAN fine-tunes of a trained generator: tests/test_models/test_gan_baselines.py
GAN_FILES = [os.path.join(REPO_DIR, 'options', 'baselines', f'{n}.yml') for n in ('esrgan', 'cnlrn_gan')]


def test_every_table_has_its_option_file():
    names = {os.path.relpath(p, REPO_DIR) for p in OPTION_FILES}
    baselines = ('rcan', 'rrdbnet', 'srn_rcan', 'srn_rrdbnet', 'esrgan', 'cnlrn_gan')
    assert names == {f'options/baselines/{n}.yml' for n in baselines} | {
        f'options/ablations/{n}.yml'
        for n in ('no_deblur', 'frozen_deblur', 'no_nonlocal', 'post_upsampling', 'no_gradient_loss')
    }


def test_one_stage_baselines_train_through_the_general_model():
    """Plain SR networks need none of CNLRNModel's stages; the cascades keep it for their DeblurNet options."""
    model_types = {}
    for name in ('rcan', 'rrdbnet', 'srn_rcan', 'srn_rrdbnet'):
        with open(os.path.join(REPO_DIR, 'options', 'baselines', f'{name}.yml'), encoding='utf-8') as f:
            model_types[name] = yaml.safe_load(f)['model_type']
    assert model_types == dict(
        rcan='RobustSRModel', rrdbnet='RobustSRModel', srn_rcan='CNLRNModel', srn_rrdbnet='CNLRNModel'
    )


def shrink(network):
    """The option file's network with its layer counts cut to a tiny size, switches kept."""
    if network['type'] == 'DeblurSRCascade':
        network.update(n_feats=8, n_deblur_blocks=1)
        network['sr_opt'].update(TINY_SR[network['sr_opt']['type']])
    else:
        network.update(TINY_SR[network['type']])
    return network


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('tables')
    data = make_tiny_reds(str(root / 'data'))
    deblur = root / 'predeblur.pth'
    torch.save({'params': CNLRNPreDeblur(**TINY_PREDEBLUR_ARGS).state_dict()}, deblur)
    cascade_deblur = root / 'cascade_predeblur.pth'
    torch.save({'params': CNLRNPreDeblur(n_feats=8, n_deblur_blocks=1).state_dict()}, cascade_deblur)
    return root, data, deblur, cascade_deblur


@pytest.mark.parametrize(
    'option_file', [p for p in OPTION_FILES if p not in GAN_FILES], ids=lambda p: os.path.basename(p)
)
def test_option_file_trains_two_iterations(option_file, tiny_data):
    root, data, deblur, cascade_deblur = tiny_data
    with open(option_file, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    shrink(opt['network_g'])
    if opt['path'].get('pretrain_network_deblur'):
        is_cascade = opt['network_g']['type'] == 'DeblurSRCascade'
        opt['path']['pretrain_network_deblur'] = str(cascade_deblur if is_cascade else deblur)
    deep_update(
        opt,
        dict(
            num_gpu=0,
            dist=False,
            rank=0,
            world_size=1,
            is_train=True,
            path=dict(models=str(root / 'models'), training_states=str(root / 'states')),
        ),
    )
    train_set = dict(
        opt['datasets']['train'],
        phase='train',
        scale=4,
        gt_size=32,
        dataroot_gt=data['train_sharp'],
        dataroot_lq=data['train_blur_bicubic_X4'],
    )
    dataset = build_dataset(train_set)
    model = build_model(opt)
    assert type(model).__name__ == opt['model_type']
    net = model.get_bare_model(model.net_g)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for it in (1, 2):
        batch = torch.utils.data.default_collate([dataset[2 * it], dataset[2 * it + 1]])
        model.feed_data(batch)
        model.optimize_parameters(it)
        assert all(torch.isfinite(torch.tensor(v)) for v in model.get_current_log().values())
    assert ('l_grad' in model.get_current_log()) == ('grad_opt' in opt['train'])
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith('SRNet.') or not k.startswith('DeblurNet.') for k in changed)
    if opt['train'].get('freeze_deblur'):
        assert not any(k.startswith('DeblurNet.') for k in changed)
