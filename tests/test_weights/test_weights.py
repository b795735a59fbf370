"""Reading weights: always weights_only=True, one clear line for every kind of bad file."""

import collections
import re
import sys

import pytest
import torch
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.weights.files import (
    load_into,
    plain_data,
    read_state_dict,
    read_weights,
    write_checkpoint,
    write_safetensors,
)
from cnlrn_base.errors import UserError
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, TINY_PREDEBLUR, derive_options, make_opt

BAD_KEY = 'DeblurNet.inBlock.0.body.0.weight'  # (16, 3, 5, 5): 1200 values


class Payload:
    """Stands for pickled code: unpickling it would import and call this module's code."""

    def __reduce__(self):
        return (print, ('this must never run',))


def test_bare_and_basicsr_layouts(tmp_path):
    state = CNLRN(**TINY_CNLRN_ARGS).state_dict()
    torch.save(state, tmp_path / 'bare.pth')
    torch.save({'params': state, 'params_ema': state}, tmp_path / 'basicsr.pth')
    torch.save({'params': {f'module.{k}': v for k, v in state.items()}}, tmp_path / 'ddp.pth')
    for name, key in (('bare.pth', None), ('basicsr.pth', 'params_ema'), ('ddp.pth', 'params')):
        loaded = read_state_dict(str(tmp_path / name), key)
        assert loaded.keys() == state.keys()


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save({'params': Payload()}, path)
    with pytest.raises(UserError, match='evil.pth: refused to load, not plain tensors'):
        read_state_dict(str(path))
    assert 'this must never run' not in capsys.readouterr().out


@pytest.mark.parametrize(
    'content, message',
    [
        ([1, 2, 3], 'does not hold a state dict'),
        ({'params': {'a': 1}}, 'does not hold a state dict'),
        (collections.OrderedDict(), 'does not hold a state dict'),
    ],
)
def test_not_a_state_dict(tmp_path, content, message):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    with pytest.raises(UserError, match=message):
        read_state_dict(str(path))


def save_non_finite(path, value=float('nan')):
    state = CNLRN(**TINY_CNLRN_ARGS).state_dict()
    state[BAD_KEY][3, 1, 2, 0] = value
    torch.save({'params': state}, path)
    return f'{path}: {BAD_KEY} holds NaN or Inf (1 of 1200 values); refused, such weights give black or garbage outputs'


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_weights_are_refused(tmp_path, value):
    message = save_non_finite(tmp_path / 'bad.pth', value)
    with pytest.raises(UserError) as err:
        read_state_dict(tmp_path / 'bad.pth')
    assert str(err.value) == message


@pytest.mark.parametrize('dtype', [torch.int64, torch.uint8, torch.bool, torch.complex64])
def test_tensors_that_are_not_floating_point_are_refused(tmp_path, dtype):
    state = CNLRN(**TINY_CNLRN_ARGS).state_dict()
    state[BAD_KEY] = state[BAD_KEY].to(dtype)
    torch.save({'params': state}, tmp_path / 'ints.pth')
    with pytest.raises(UserError) as err:
        read_state_dict(tmp_path / 'ints.pth')
    assert str(err.value) == f'{tmp_path / "ints.pth"}: {BAD_KEY} holds {str(dtype)[6:]} values, not weights'


def test_batch_norm_step_counters_stay_integers(tmp_path):
    state = {'bn.weight': torch.ones(4), 'bn.num_batches_tracked': torch.tensor(7)}
    torch.save({'params': state}, tmp_path / 'bn.pth')
    assert read_state_dict(tmp_path / 'bn.pth')['bn.num_batches_tracked'] == 7


@pytest.mark.parametrize('path_key', ['pretrain_network_g', 'pretrain_network_deblur'])
def test_basicsr_loaders_refuse_non_finite_weights(tmp_path, path_key):
    """RobustSRModel.load_network and CNLRNModel.load_deblur_network read through read_state_dict."""
    message = save_non_finite(tmp_path / 'bad.pth')
    with pytest.raises(UserError, match=re.escape(message)):
        build_model(make_opt(**{path_key: str(tmp_path / 'bad.pth')}))


def test_empty_params_ema_falls_back_to_params(tmp_path):
    state = CNLRN(**TINY_CNLRN_ARGS).state_dict()
    torch.save({'params': state, 'params_ema': {}}, tmp_path / 'w.pth')
    loaded = read_state_dict(tmp_path / 'w.pth', 'params_ema')
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    torch.save({'params_ema': {}}, tmp_path / 'ema_only.pth')  # nothing to fall back to
    with pytest.raises(UserError, match=r"does not hold a state dict \(param key 'params_ema'\)"):
        read_state_dict(tmp_path / 'ema_only.pth', 'params_ema')


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(CNLRN(**TINY_CNLRN_ARGS).state_dict(), path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match='cut.pth: not a readable PyTorch weights file'):
        read_state_dict(str(path))
    with pytest.raises(UserError, match='weights file not found'):
        read_state_dict(str(tmp_path / 'absent.pth'))
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(UserError) as err:
        read_state_dict(tmp_path / 'empty.pth')
    assert str(err.value) == f'{tmp_path / "empty.pth"}: empty file, not PyTorch weights'


def test_wrong_architecture_lists_first_mismatches(tmp_path):
    other = CNLRN(**dict(TINY_CNLRN_ARGS, n_feats=32)).state_dict()
    with pytest.raises(UserError) as err:
        load_into(CNLRN(**TINY_CNLRN_ARGS), other, 'other.pth')
    message = str(err.value)
    assert message.startswith('other.pth: weights do not fit CNLRN: shape (file vs network): ')
    assert 'DeblurNet.inBlock.0.body.0.weight (32, 3, 5, 5) vs (16, 3, 5, 5)' in message
    assert '\n' not in message


@pytest.mark.parametrize('content', ['pickled code', 'NaN'])
def test_basicsr_test_refuses_bad_checkpoint(tmp_path, monkeypatch, capsys, run_basicsr, content):
    """The issue's case for NaN: basicsr test printed PSNR 5.15 dB from such weights and exited 0."""
    bad = tmp_path / 'bad.pth'
    if content == 'NaN':
        message = save_non_finite(bad)
    else:
        torch.save({'params': Payload()}, bad)
        message = 'refused to load'
    opt = derive_options(
        'options/test_val300.yml',
        tmp_path / 't.yml',
        dict(
            num_gpu=0,
            network_g=TINY_CNLRN,
            path=dict(pretrain_network_g=str(bad), param_key_g='params'),
            datasets=dict(test_1=dict(dataroot_gt=str(tmp_path), dataroot_lq=str(tmp_path))),
        ),
    )
    (tmp_path / 'a.png').write_bytes(b'')  # the data set is never reached
    monkeypatch.chdir(tmp_path)  # where the pipeline writes results/
    assert run_basicsr('test', '-opt', opt) == 2
    stdout, stderr = capsys.readouterr()
    assert stderr.strip().splitlines()[-1].startswith('basicsr test: error: ')
    assert message in stderr and 'Traceback' not in stderr
    assert 'this must never run' not in stdout


# -- .safetensors and the stored network options ---------------------------------------------------


def tiny_state():
    torch.manual_seed(0)
    return CNLRN(**TINY_CNLRN_ARGS).state_dict()


def assert_same_tensors(loaded, state):
    """Same keys (.safetensors files list them sorted), dtypes, shapes and bits."""
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key


def test_safetensors_round_trip_with_options(tmp_path):
    state = tiny_state()
    write_safetensors(state, tmp_path / 'w.safetensors', TINY_CNLRN)
    weights = read_weights(tmp_path / 'w.safetensors', 'params_ema')
    assert_same_tensors(weights.state_dict, state)
    assert weights.network_opt == TINY_CNLRN
    write_checkpoint(weights.state_dict, tmp_path / 'back.pth', weights.network_opt)
    back = torch.load(tmp_path / 'back.pth', weights_only=True)
    assert_same_tensors(back['params'], state)
    assert back['network_g'] == TINY_CNLRN
    write_safetensors(state, tmp_path / 'bare.safetensors')
    assert read_weights(tmp_path / 'bare.safetensors').network_opt is None


def test_plain_data_options():
    options = collections.OrderedDict(type='CNLRN', nonlocal_psize=(4, 2), sr_opt=collections.OrderedDict(a=[1.5]))
    assert plain_data(options) == {'type': 'CNLRN', 'nonlocal_psize': [4, 2], 'sr_opt': {'a': [1.5]}}
    assert type(plain_data(options)) is dict
    with pytest.raises(TypeError, match='not plain data'):
        plain_data({'x': torch.ones(1)})


def test_bad_safetensors_files(tmp_path):
    write_safetensors(tiny_state(), tmp_path / 'w.safetensors')
    data = (tmp_path / 'w.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(data[:-10])
    (tmp_path / 'junk.safetensors').write_bytes(b'not a safetensors file at all')
    for name in ('cut.safetensors', 'junk.safetensors'):
        with pytest.raises(UserError) as err:
            read_state_dict(tmp_path / name)
        assert str(err.value).startswith(f'{tmp_path / name}: not a readable safetensors file (')
        assert '\n' not in str(err.value)


def test_safetensors_metadata_that_is_not_options(tmp_path):
    import safetensors.torch

    (tmp_path / 'w.safetensors').write_bytes(safetensors.torch.save(tiny_state(), metadata={'network_g': '{oops'}))
    with pytest.raises(UserError, match=r"w.safetensors: metadata 'network_g' is not JSON"):
        read_weights(tmp_path / 'w.safetensors')


def test_non_finite_safetensors_are_refused(tmp_path):
    state = tiny_state()
    state[BAD_KEY][0, 0, 0, 0] = float('inf')
    write_safetensors(state, tmp_path / 'bad.safetensors')
    with pytest.raises(UserError, match=f'bad.safetensors: {BAD_KEY} holds NaN or Inf'):
        read_state_dict(tmp_path / 'bad.safetensors')


def test_missing_safetensors_package_is_one_line(tmp_path, monkeypatch):
    write_safetensors(tiny_state(), tmp_path / 'w.safetensors')
    monkeypatch.setitem(sys.modules, 'safetensors', None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"\.safetensors weights need the 'safetensors' package"):
        read_state_dict(tmp_path / 'w.safetensors')


@pytest.mark.parametrize('stage', ['pretrain', 'joint'])
def test_saved_checkpoints_carry_their_network_options(tmp_path, stage):
    """Plain data (weights_only=True); BasicSR's own BaseModel.load_network still reads the file."""
    network = TINY_PREDEBLUR if stage == 'pretrain' else dict(TINY_CNLRN, nonlocal_psize=(2, 2), upsampling='post')
    model = build_model(make_opt(network, dict(stage=stage), models=str(tmp_path)))
    model.save_network([model.net_g, model.net_g], 'net_g', -1, param_key=['params', 'params_ema'])
    checkpoint = torch.load(tmp_path / 'net_g_latest.pth', weights_only=True)
    assert checkpoint['network_g'] == plain_data(network)
    weights = read_weights(tmp_path / 'net_g_latest.pth', 'params_ema')
    assert weights.network_opt == plain_data(network)
    fresh = build_model(make_opt(network, dict(stage=stage)))
    BaseModel.load_network(fresh, fresh.net_g, str(tmp_path / 'net_g_latest.pth'), True, 'params')
    assert_same_tensors(fresh.net_g.state_dict(), model.net_g.state_dict())


def test_pretrain_network_g_reads_safetensors(tmp_path):
    state = tiny_state()
    write_safetensors(state, tmp_path / 'w.safetensors', TINY_CNLRN)
    model = build_model(make_opt(pretrain_network_g=str(tmp_path / 'w.safetensors')))
    assert_same_tensors(model.net_g.state_dict(), state)
    deblur = {k: v for k, v in state.items() if k.startswith('DeblurNet.')}
    write_safetensors(deblur, tmp_path / 'deblur.safetensors')
    model = build_model(make_opt(pretrain_network_deblur=str(tmp_path / 'deblur.safetensors')))
    assert_same_tensors(model.net_g.DeblurNet.state_dict(), {k[len('DeblurNet.') :]: v for k, v in deblur.items()})
