"""Float32 precision on the GPU made explicit (``speed: {tf32}``), and autocast's check not fooled by CUDA's start-up.

TF32 itself needs an Ampere or later GPU (``cnlrn gpu-check`` measures it); here the
option is parsed and applied to both of torch's flags, convolutions' and matmuls'.
"""

import warnings

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.models.precision import Precision
from cnlrn_arch.runtime import speed
from cnlrn_arch.runtime.speed import Speed, check_autocast, parse_speed, tf32_set_to, use_tf32
from cnlrn_base.errors import UserError
from cnlrn_base.project import option_path
from cnlrn_cli.main import main
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, make_opt


@pytest.fixture(autouse=True)
def restore_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def tf32_flags():
    """(matmuls, convolutions): whether each may use TF32."""
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize('section, tf32', [({}, False), ({'tf32': False}, False), ({'tf32': True}, True)])
def test_tf32_option_parses(section, tf32):
    assert parse_speed({'speed': section})[2] == Speed(tf32=tf32)


@pytest.mark.parametrize(
    'section, message',
    [
        ({'tf32': 'yes'}, "x.yml: speed:tf32 must be true or false, got 'yes'"),
        ({'tf32s': True}, "x.yml: speed: unknown keys ['tf32s']; known: channels_last, compile, tf32"),
    ],
)
def test_bad_tf32_options_are_one_line_errors(section, message):
    with pytest.raises(UserError) as err:
        parse_speed({'speed': section}, 'x.yml: ')
    assert str(err.value) == message


@pytest.mark.parametrize('name', ['pretrain.yml', 'joint.yml', 'test_val300.yml'])
def test_the_shipped_option_files_ask_for_ieee_float32(name):
    with open(option_path(name), encoding='utf-8') as f:
        assert parse_speed(yaml.safe_load(f))[2].tf32 is False


@pytest.mark.parametrize('enabled', [True, False])
def test_use_tf32_sets_convolutions_and_matmuls_alike(enabled):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not enabled
    use_tf32(enabled)
    assert tf32_flags() == (enabled, enabled)
    # torch's own precision setting agrees: nothing was mixed with the fp32_precision settings
    assert torch.get_float32_matmul_precision() == ('high' if enabled else 'highest')


def test_tf32_set_to_restores_the_flags():
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
    with tf32_set_to(True):
        assert tf32_flags() == (True, True)
    assert tf32_flags() == (False, True)


@pytest.mark.parametrize('tf32', [True, False])
def test_building_a_model_applies_its_tf32_option(tf32):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
    build_model(make_opt(network=TINY_CNLRN, speed={'tf32': tf32}))
    assert tf32_flags() == (tf32, tf32)


@pytest.mark.parametrize('flags, tf32', [([], False), (['--tf32'], True)])
def test_infer_applies_its_tf32_flag(tmp_path, flags, tf32):
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, tmp_path / 'w.pth')
    (tmp_path / 'tiny.yml').write_text(f'network_g: {TINY_CNLRN}\n')
    cv2.imwrite(str(tmp_path / 'x.png'), np.full((8, 8, 3), 128, np.uint8))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
    argv = ['infer', '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'w.pth')]
    assert main([*argv, '--opt', str(tmp_path / 'tiny.yml'), '--device', 'cpu', *flags]) == 0
    assert tf32_flags() == (tf32, tf32)


class StandInAutocast:
    """torch.autocast's constructor, recording its calls and warning like an unsupported dtype if asked."""

    def __init__(self, calls, warn):
        self.calls, self.warn = calls, warn

    def __call__(self, device_type, dtype):
        self.calls.append('autocast')
        if self.warn:
            warnings.warn('In CUDA autocast, but the target dtype is not supported. Disabling autocast.', stacklevel=1)


def cuda_starting_with_a_warning(monkeypatch, warn_in_autocast):
    calls = []

    def init():
        calls.append('init')
        warnings.warn('CUDA initialization: a harmless start-up notice', UserWarning, stacklevel=1)

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'init', init)
    monkeypatch.setattr(speed.torch, 'autocast', StandInAutocast(calls, warn_in_autocast))
    return calls


def test_a_warning_of_cuda_starting_up_is_no_autocast_failure(monkeypatch):
    calls = cuda_starting_with_a_warning(monkeypatch, warn_in_autocast=False)
    with pytest.warns(UserWarning, match='harmless start-up notice'):
        check_autocast('cuda', torch.bfloat16, 'train:amp')
    assert calls == ['init', 'autocast']


def test_the_autocast_warning_itself_still_fails(monkeypatch):
    calls = cuda_starting_with_a_warning(monkeypatch, warn_in_autocast=True)
    with pytest.warns(UserWarning, match='harmless'), pytest.raises(UserError) as err:
        check_autocast('cuda', torch.float16, 'val:amp')
    assert str(err.value).startswith('val:amp: autocast to torch.float16 does not work on cuda here: In CUDA autocast')
    assert calls == ['init', 'autocast']


def test_no_cuda_start_up_for_the_cpu(monkeypatch):
    calls = cuda_starting_with_a_warning(monkeypatch, warn_in_autocast=False)
    check_autocast('cpu', torch.bfloat16, '--bf16')
    assert calls == ['autocast']


@pytest.mark.parametrize(
    'train, speed_section, scaled, gpu_memory_format',
    [
        ({}, {}, False, torch.preserve_format),
        ({'amp': 'bf16'}, {'channels_last': True}, False, torch.channels_last),
        ({'amp': 'fp16'}, {}, True, torch.preserve_format),
    ],
)
def test_precision_scales_the_loss_only_for_fp16_and_formats_inputs_as_speed_says_on_a_gpu_and_nhwc_on_the_cpu(
    train, speed_section, scaled, gpu_memory_format
):
    precision = Precision(make_opt(train=train, speed=speed_section))
    assert precision.grad_scaler('cpu').is_enabled() is scaled
    assert precision.memory_format(torch.device('cuda')) == gpu_memory_format
    assert precision.memory_format(torch.device('cpu')) == torch.channels_last


def test_precision_runs_the_plain_network_unless_compiled_and_compiles_each_network_once():
    net, ema = CNLRN(**TINY_CNLRN_ARGS), CNLRN(**TINY_CNLRN_ARGS)
    assert Precision(make_opt()).run(net) is net
    precision = Precision(make_opt(speed={'compile': {'backend': 'eager'}}))
    compiled_net = precision.run(net)
    assert compiled_net is not net and compiled_net._orig_mod is net  # torch.compile wraps lazily: nothing compiled
    assert precision.run(net) is compiled_net and precision.run(ema)._orig_mod is ema
