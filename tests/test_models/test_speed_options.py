"""Speed options (train/val ``amp``, ``speed: {channels_last, compile}``, ``cnlrn infer`` flags) against the plain path.

No test times anything: each checks that an option runs, gives finite losses
and computes what the plain float32 path computes, within a stated tolerance.
torch.compile runs with ``backend: eager`` (dynamo's graph capture, no
AOTAutograd and no code generation): the default inductor backend takes
about two minutes for this tiny network on a 2-core CPU.
"""

import copy
import math

import numpy as np
import pytest
import torch
from basicsr.models import build_model

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.options.check import check_options
from cnlrn_arch.runtime.speed import check_autocast
from cnlrn_base.errors import UserError
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, derive_options, make_opt, tiny_infer_output

COMPILE = dict(backend='eager')
# float32 paths that may reorder arithmetic: channels_last picks other convolution kernels (measured
# differences about 1e-7); compile with the eager backend runs the captured graphs op by op (measured: equal)
CHANNELS_LAST_ATOL = 1e-5
COMPILE_ATOL = 1e-4
# bf16 keeps 8 significant bits: measured output differences about 2e-3 on outputs of spread about 0.1
BF16_ATOL = 2e-2


def build(seed=0, **sections):
    torch.manual_seed(seed)
    return build_model(make_opt(**sections))


@pytest.fixture(scope='module')
def batch():
    torch.manual_seed(1)
    gt = torch.rand(1, 3, 32, 32)
    return dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt)


def grads(model):
    return {k: p.grad.clone() for k, p in model.net_g.named_parameters()}


def train_once(model, batch, it=1):
    model.feed_data(batch)
    model.optimize_parameters(it)
    return model.get_current_log()


@pytest.fixture(scope='module')
def plain(batch):
    """Test output and first-iteration output, losses and gradients of the plain float32 path."""
    model = build()
    model.feed_data(batch)
    model.test()
    tested = model.output.clone()
    log = train_once(model, batch)
    return dict(tested=tested, output=model.output.detach().clone(), log=log, grads=grads(model))


def test_the_cpu_runs_the_network_channels_last_unasked(batch):
    model = build()
    model.feed_data(batch)
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.net_g.parameters() if p.ndim == 4)


@pytest.mark.parametrize(
    'speed, atol',
    [(dict(channels_last=True), CHANNELS_LAST_ATOL), (dict(compile=COMPILE), COMPILE_ATOL)],
    ids=['channels_last', 'compile'],
)
def test_speed_options_compute_what_the_plain_path_does(speed, atol, plain, batch):
    model = build(speed=speed)
    model.feed_data(batch)
    if speed.get('channels_last'):
        assert model.lq.is_contiguous(memory_format=torch.channels_last)
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.net_g.parameters() if p.ndim == 4)
    model.test()
    assert torch.allclose(model.output, plain['tested'], atol=atol, rtol=0)
    log = train_once(model, batch)
    assert torch.allclose(model.output.detach(), plain['output'], atol=atol, rtol=0)
    assert log.keys() == plain['log'].keys()
    assert all(math.isclose(log[k], plain['log'][k], abs_tol=atol) for k in log)
    got = grads(model)
    assert all(torch.allclose(got[k], plain['grads'][k], atol=atol, rtol=1e-3) for k in got)
    second = train_once(model, batch, 2)
    assert all(math.isfinite(v) for v in second.values())


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_trains_with_finite_losses_close_to_float32(amp, plain, batch):
    if amp == 'fp16':
        check_autocast('cpu', torch.float16, 'this test')  # raises where fp16 autocast does not work on the CPU
    model = build(train=dict(amp=amp))
    assert model.scaler.is_enabled() == (amp == 'fp16')
    model.feed_data(batch)
    model.test()  # val:amp follows train:amp
    assert model.output.dtype == torch.float32
    assert (model.output - plain['tested']).abs().max() < BF16_ATOL
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    logs = [train_once(model, batch, it) for it in (1, 2)]
    assert all(math.isfinite(v) for log in logs for v in log.values()), logs
    assert all(math.isclose(logs[0][k], plain['log'][k], abs_tol=BF16_ATOL) for k in logs[0])
    assert not all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def test_fp16_loss_scale_is_saved_and_resumed(tmp_path, batch):
    opt = make_opt(train=dict(amp='fp16'))
    opt['path'] = dict(training_states=str(tmp_path), models=str(tmp_path))
    model = build_model(copy.deepcopy(opt))
    train_once(model, batch)
    set_scale(model.scaler, 1024.0)  # not the initial 65536, so a fresh scaler would differ
    model.save_training_state(0, 1)
    state = torch.load(tmp_path / '1.state', weights_only=True)
    resumed = build_model(opt)
    resumed.resume_training(state)
    assert resumed.scaler.get_scale() == 1024.0
    assert resumed.scaler.state_dict() == model.scaler.state_dict()


def set_scale(scaler, scale):
    state = scaler.state_dict()
    state['scale'] = scale
    scaler.load_state_dict(state)


def test_fp16_overflow_skips_the_update_and_lowers_the_scale(batch):
    model = build(train=dict(amp='fp16'))
    set_scale(model.scaler, 2.0**120)  # scaled gradients overflow: the scaler must back off
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    train_once(model, batch)
    assert model.nonfinite_guard.in_a_row == 1 and model.scaler.get_scale() == 2.0**119
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    set_scale(model.scaler, 1.0)
    train_once(model, batch, 2)
    assert model.nonfinite_guard.in_a_row == 0
    assert not all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


@pytest.mark.parametrize('speed', [dict(compile=COMPILE), dict(channels_last=True)], ids=['compile', 'channels_last'])
def test_checkpoints_keep_the_plain_keys_and_layout(tmp_path, batch, speed):
    opt = make_opt(train=dict(ema_decay=0.9), speed=speed)
    opt['path'] = dict(models=str(tmp_path))
    model = build_model(opt)
    train_once(model, batch)
    model.save_network([model.net_g, model.net_g_ema], 'net_g', 5, param_key=['params', 'params_ema'])
    saved = torch.load(tmp_path / 'net_g_5.pth', weights_only=True)
    released_keys = list(CNLRN(**TINY_CNLRN_ARGS).state_dict())
    for key in ('params', 'params_ema'):
        assert list(saved[key]) == released_keys
        assert all(v.is_contiguous() for v in saved[key].values())
    # loading into a model with the option on, then testing through it
    loaded = build_model(make_opt(speed=speed) | dict(path=dict(pretrain_network_g=str(tmp_path / 'net_g_5.pth'))))
    state = loaded.net_g.state_dict()
    assert all(torch.equal(state[k], saved['params'][k]) for k in released_keys)
    loaded.feed_data(batch)
    loaded.test()
    assert torch.isfinite(loaded.output).all()


BASE_YML = dict(num_gpu=0, network_g=TINY_CNLRN, path=dict(pretrain_network_deblur=None))


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(train=dict(amp='fp8')), "train:amp must be ~ or 'fp32' (float32), 'bf16' or 'fp16', got 'fp8'"),
        (dict(val=dict(amp=16)), "val:amp must be ~ or 'fp32'"),
        (dict(speed=dict(channels_last='yes')), 'speed:channels_last must be true or false'),
        (dict(speed=dict(compile=dict(mode='fastest'))), 'speed:compile: Unrecognized mode=fastest'),
        (dict(speed=dict(compile=dict(backend='nope'))), "speed:compile: Invalid backend: 'nope'"),
        (dict(speed=dict(compile=dict(modes='default'))), "speed:compile: unknown key 'modes'"),
        (dict(speed=dict(fast=True)), "speed: unknown keys ['fast']"),
    ],
)
def test_invalid_speed_options_are_one_line_errors(tmp_path, changes, message):
    path = derive_options('options/joint.yml', tmp_path / 'bad.yml', dict(BASE_YML, **changes))
    with pytest.raises(UserError) as err:
        check_options(path, is_train=True)
    assert str(err.value).startswith(f'{path}: {message}')


def test_invalid_amp_stops_basicsr_train_with_one_line(tmp_path, run_basicsr, capsys):
    path = derive_options('options/joint.yml', tmp_path / 'fp8.yml', dict(BASE_YML, train=dict(amp='fp8')))
    assert run_basicsr('train', '-opt', path) == 2
    assert (
        capsys.readouterr().err.strip() == f"basicsr train: error: {path}: train:amp must be ~ or 'fp32' "
        "(float32), 'bf16' or 'fp16', got 'fp8'"
    )


def test_unsupported_autocast_is_a_clear_error():
    with pytest.raises(UserError, match=r'--x: autocast to torch.float64 does not work on cpu here: In CPU autocast'):
        check_autocast('cpu', torch.float64, '--x')


# -- cnlrn infer ------------------------------------------------------------------------------------


# --compile is left out: tracing this network (graph breaks in the attention) takes 30 s more here
@pytest.mark.parametrize(
    'flags, levels',
    [(['--channels-last'], 1), (['--channels-last', '--tile', '4', '--self-ensemble'], 1), (['--bf16'], 8)],
    ids=['channels_last', 'tiled', 'bf16'],
)
def test_infer_speed_flags_match_plain_output(infer_setup, flags, levels):
    """8-bit outputs equal the plain run's within ``levels`` (1: float32 rounding at a quantization boundary).

    The plain run is of the whole image. '--tile 4' with the default --tile-pad 16 cuts the 12x20 image
    into 3x5 tiles that each see all of it, so tiling changes nothing but the float rounding, while
    their blending ramps overlap many ways (the weights must be divided out).
    """
    plain_flags = [f for f in flags if f == '--self-ensemble']
    plain = tiny_infer_output(infer_setup, 'plain_' + '_'.join(plain_flags), *plain_flags)
    fast = tiny_infer_output(infer_setup, 'fast_' + '_'.join(f.strip('-') for f in flags), *flags)
    assert fast.shape == plain.shape == (48, 80, 3)
    assert np.abs(fast - plain).max() <= levels
