"""Network options read from weights: every network the project's option files build is recognised."""

import glob
import inspect
import os

import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

import cnlrn_arch  # noqa: F401  registers the networks
from cnlrn_arch.weights.config_from_weights import describe_weights, network_options_from_weights
from tests.helpers import DATA_DIR, REPO_DIR, TINY_CNLRN_ARGS, TINY_PREDEBLUR_ARGS

# constructor arguments that leave no trace in the weights (see config_from_weights' docstring)
UNTRACEABLE = {'nonlocal_psize', 'attn_impl', 'upsampling', 'scale', 'res_scale', 'img_range', 'rgb_mean'}
TINY_RCAN = dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=1, squeeze_factor=4)
TINY_RRDBNET = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4)


def option_files():
    """The project's option files whose network_g names more than its type, by network_g: the first file of each."""
    paths = sorted(glob.glob(os.path.join(REPO_DIR, 'options', '**', '*.yml'), recursive=True))
    return {repr(network_g(p)): os.path.relpath(p, REPO_DIR) for p in reversed(paths) if len(network_g(p)) > 1}


def network_g(path):
    with open(os.path.join(REPO_DIR, path), encoding='utf-8') as f:
        return yaml.safe_load(f)['network_g']


def build(options, device='cpu'):
    args = {k: v for k, v in options.items() if k != 'type'}
    with torch.device(device):
        return ARCH_REGISTRY.get(options['type'])(**args)


def key_shapes(state_dict):
    return [(k, tuple(v.shape)) for k, v in state_dict.items()]


def assert_agrees(inferred, given):
    """Every argument read from the weights is the one ``given`` (with its constructor's defaults) builds with."""
    defaults = inspect.signature(ARCH_REGISTRY.get(given['type'])).parameters
    effective = {name: p.default for name, p in defaults.items()} | given
    for key, value in inferred.items():
        if key == 'sr_opt':
            assert_agrees(value, given['sr_opt'])
        else:
            assert value == effective[key], key


def test_every_ablation_is_covered():
    covered = {repr(network_g(p)) for p in option_files().values()}
    ablations = glob.glob(os.path.join(REPO_DIR, 'options', 'ablations', '*.yml'))
    assert len(ablations) >= 5 and {repr(network_g(p)) for p in ablations} <= covered
    assert len(covered) >= 9  # release, 3 ablations that change the network, demo x 2, 4 baselines


@pytest.mark.parametrize('path', sorted(option_files().values()))
def test_option_files_networks_are_recognised(path):
    """Full size on the meta device: the inferred options build the same keys and shapes."""
    given = network_g(path)
    state = build(given, 'meta').state_dict()
    inferred = network_options_from_weights(state)
    assert inferred is not None
    assert inferred['type'] == given['type']
    assert_agrees(inferred, given)
    assert key_shapes(build(inferred, 'meta').state_dict()) == key_shapes(state)


@pytest.mark.parametrize(
    'tsv, expected',
    [
        (
            'cnlrn_default_keys.tsv',
            dict(
                type='CNLRN',
                n_colors=3,
                n_deblur_blocks=20,
                n_nlrgs_body=6,
                n_nlrgs_up1=2,
                n_nlrgs_up2=2,
                n_subgroups=2,
                n_rcabs=4,
                n_feats=64,
            ),
        ),
        ('predeblur_default_keys.tsv', dict(type='CNLRNPreDeblur', n_colors=3, n_feats=64, n_deblur_blocks=20)),
    ],
)
def test_released_keys_are_recognised(tsv, expected):
    """The authors' release (its keys and shapes as listed in the reference TSV) is CNLRN with its defaults."""
    with open(os.path.join(DATA_DIR, tsv), encoding='utf-8') as f:
        rows = [row.split('\t') for row in f.read().splitlines()[1:]]
    state = {key: torch.empty([int(d) for d in shape.split('x')], device='meta') for key, shape in rows}
    inferred = network_options_from_weights(state)
    assert inferred == expected
    assert key_shapes(build(inferred, 'meta').state_dict()) == key_shapes(state)


@pytest.mark.parametrize(
    'options',
    [
        dict(type='CNLRN', **TINY_CNLRN_ARGS),
        dict(type='CNLRN', **TINY_CNLRN_ARGS, with_deblur=False),
        dict(type='CNLRN', **TINY_CNLRN_ARGS, nonlocal_block=False),
        dict(type='CNLRNPreDeblur', **TINY_PREDEBLUR_ARGS),
        dict(TINY_RCAN, upscale=4),
        dict(TINY_RCAN, upscale=3),
        dict(TINY_RCAN, upscale=2),
        dict(TINY_RCAN, upscale=8),
        dict(TINY_RRDBNET, scale=4),
        dict(TINY_RRDBNET, scale=2),
        dict(TINY_RRDBNET, scale=1),
        dict(type='DeblurSRCascade', **TINY_PREDEBLUR_ARGS, sr_opt=dict(TINY_RCAN, upscale=4)),
    ],
    ids=lambda options: '-'.join(f'{v}' for v in options.values() if not isinstance(v, dict)),
)
def test_inferred_network_gives_the_same_output(options):
    torch.manual_seed(0)
    net = build(options).eval()
    inferred = network_options_from_weights(net.state_dict())
    assert_agrees(inferred, options)
    rebuilt = build(inferred).eval()
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x = torch.rand(1, 3, 4, 4)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), net(x))


def test_post_upsampling_cannot_be_told_from_progressive():
    """Documented: the same keys and shapes; such a bare state dict reads as the progressive network."""
    post = build(dict(type='CNLRN', **TINY_CNLRN_ARGS, upsampling='post'), 'meta')
    progressive = build(dict(type='CNLRN', **TINY_CNLRN_ARGS), 'meta')
    assert key_shapes(post.state_dict()) == key_shapes(progressive.state_dict())
    assert 'upsampling' not in network_options_from_weights(post.state_dict())


def test_unknown_weights():
    state = {'encoder.weight': torch.zeros(4, 3), 'encoder.bias': torch.zeros(4), 'head.0.weight': torch.zeros(2)}
    assert network_options_from_weights(state) is None
    assert describe_weights(state) == '3 tensors, top-level modules encoder, head'
    cnlrn = build(dict(type='CNLRN', **TINY_CNLRN_ARGS), 'meta').state_dict()
    del cnlrn['SRNet.tail.1.weight']  # a damaged file is not guessed at
    assert network_options_from_weights(cnlrn) is None
