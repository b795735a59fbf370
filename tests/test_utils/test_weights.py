"""Reading weights: always weights_only=True, one clear line for every kind of bad file."""

import collections
import re

import pytest
import torch
from basicsr.models import build_model

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.utils.errors import UserError
from cnlrn_arch.utils.weights import load_into, read_state_dict
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, derive_options, make_opt

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
