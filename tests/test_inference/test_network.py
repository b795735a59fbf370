"""The inference settings, checked once, and the loaded network's descriptor: scale, fingerprint, precisions."""

import pytest
import torch
import torch.nn.functional as F

from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.inference.network import LoadedNetwork, load_network
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.runtime.speed import AMP_DTYPES
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import AUTOCAST_PRECISIONS, DEFAULT_TILE_PAD
from tests.helpers import TINY_CNLRN, TINY_PREDEBLUR_ARGS, tiny_net


def test_checked_settings_resolve_the_device_and_the_tile_padding():
    assert InferenceSettings.checked('cpu', tile=8) == InferenceSettings(torch.device('cpu'), 8, DEFAULT_TILE_PAD)
    assert InferenceSettings.checked('cpu', tile=8, tile_pad=0).tile_pad == 0
    with pytest.raises(UserError, match='^--tile-pad needs --tile$'):
        InferenceSettings.checked('cpu', tile_pad=4)


@pytest.mark.parametrize(
    'choices, named',
    [
        (dict(precision='fp16'), '--fp16'),
        (dict(channels_last=True, compile_backend='inductor'), '--channels-last --compile'),
    ],
)
def test_pytorch_options_are_refused_for_onnxruntime_and_taken_for_torch(choices, named):
    with pytest.raises(UserError, match=f'^{named}: PyTorch options, not for --backend onnxruntime'):
        InferenceSettings.checked('cpu', backend='onnxruntime', **choices)
    if 'precision' not in choices:  # fp16 autocast on the CPU depends on the torch build
        assert InferenceSettings.checked('cpu', **choices).speed.compile == {'backend': 'inductor'}


def test_the_help_names_every_precision_torch_autocasts_to():
    assert tuple(AMP_DTYPES) == AUTOCAST_PRECISIONS


def test_loaded_network_measures_its_scale_and_describes_itself(tmp_path):
    net = tiny_net()
    torch.save({'params': net.state_dict()}, tmp_path / 'sr.pth')
    torch.manual_seed(0)
    torch.save({'params': CNLRNPreDeblur(**TINY_PREDEBLUR_ARGS).state_dict()}, tmp_path / 'deblur.pth')
    sr = load_network(tmp_path / 'sr.pth')
    assert (sr.backend, sr.scale, sr.size_multiple) == ('torch', 4, net.size_multiple)
    assert sr.source == str(tmp_path / 'sr.pth')
    assert sr.autocast_precisions == AUTOCAST_PRECISIONS and not sr.module.training
    deblur = load_network(tmp_path / 'deblur.pth')
    assert deblur.scale == 1  # a deblurring network keeps the size, whatever the project's SCALE


def test_fingerprint_follows_the_weights_and_the_network_options():
    opt = dict(TINY_CNLRN)
    fingerprint = LoadedNetwork.of_torch(tiny_net(), network_opt=opt).fingerprint
    assert LoadedNetwork.of_torch(tiny_net(), network_opt=dict(opt)).fingerprint == fingerprint
    assert LoadedNetwork.of_torch(tiny_net(seed=1), network_opt=opt).fingerprint != fingerprint
    naive = {**opt, 'attn_impl': 'naive'}
    assert LoadedNetwork.of_torch(tiny_net(), network_opt=naive).fingerprint != fingerprint
    assert LoadedNetwork.of_torch(tiny_net()).fingerprint != fingerprint  # options unknown


class Shrinking(torch.nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 2)


def test_a_network_that_does_not_upscale_is_refused_on_loading(monkeypatch):
    monkeypatch.setattr('cnlrn_arch.inference.network.build_loaded', lambda *args: (Shrinking(), None))
    with pytest.raises(UserError, match=r'^shrinking.pth: the network maps an input of shape \(1, 3, 8, 8\) to'):
        load_network('shrinking.pth')
