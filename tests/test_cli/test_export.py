"""``cnlrn export`` and weights without ``--opt``: safetensors round trips, options stored in the files."""

import json
import sys
import types

import cv2
import numpy as np
import pytest
import safetensors
import torch
from basicsr.models import build_model

import cnlrn_arch.weights
from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.main import main
from tests.helpers import REPO_DIR, TINY_CNLRN, TINY_CNLRN_ARGS, assert_one_line_error, make_opt


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('image') / 'x.png'
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (12, 20, 3), endpoint=True, dtype=np.uint8))
    return path


def infer(image, out, weights, *opt):
    """``cnlrn infer`` of ``image`` into ``out``; the output pixels."""
    argv = ['infer', '-i', image, '-o', out, '--weights', weights, '--device', 'cpu', *opt]
    assert main([str(arg) for arg in argv]) == 0
    return cv2.imread(str(out / 'x_cnlrn.png'), cv2.IMREAD_UNCHANGED)


def export(weights, *args):
    return main(['export', '--weights', str(weights), *map(str, args)])


def test_pth_safetensors_pth_round_trip_is_bit_identical(tmp_path, capsys):
    torch.manual_seed(0)
    state = CNLRN(**TINY_CNLRN_ARGS).state_dict()
    torch.save({'params': state}, tmp_path / 'w.pth')
    assert export(tmp_path / 'w.pth', '--safetensors', tmp_path / 'w.safetensors') == 0
    assert export(tmp_path / 'w.safetensors', '--pth', tmp_path / 'back.pth') == 0
    back = torch.load(tmp_path / 'back.pth', weights_only=True)
    assert list(back['params']) == list(state)  # in the network's order again
    for key, value in state.items():
        assert back['params'][key].dtype == value.dtype
        assert back['params'][key].numpy().tobytes() == value.numpy().tobytes(), key
    assert back['network_g'] == TINY_CNLRN | {'n_colors': 3}
    with safetensors.safe_open(str(tmp_path / 'w.safetensors'), framework='pt') as f:
        assert json.loads(f.metadata()['network_g']) == back['network_g']
    assert f'wrote {tmp_path / "back.pth"}: network_g {{"type": "CNLRN"' in capsys.readouterr().out


def test_demo_checkpoint_needs_no_opt(tmp_path, image):
    """The issue's case: --weights CNLRN_demo.pth without --opt; and its .safetensors, the same pixels."""
    with_opt = infer(image, tmp_path / 'opt', DEMO_CHECKPOINT, '--opt', f'{REPO_DIR}/options/demo/test_checkpoint.yml')
    assert np.array_equal(infer(image, tmp_path / 'no_opt', DEMO_CHECKPOINT), with_opt)
    assert export(DEMO_CHECKPOINT, '--safetensors', tmp_path / 'demo.safetensors') == 0
    assert np.array_equal(infer(image, tmp_path / 'safetensors', tmp_path / 'demo.safetensors'), with_opt)


def test_stored_options_say_what_the_keys_cannot(tmp_path, image):
    """post_upsampling and the attention heads leave no trace in the keys; a checkpoint of the model says them."""
    network = dict(TINY_CNLRN, upsampling='post', nonlocal_psize=[2, 2])
    torch.manual_seed(0)
    model = build_model(make_opt(network, models=str(tmp_path)))
    model.save_network([model.net_g, model.net_g], 'net_g', -1, param_key=['params', 'params_ema'])
    checkpoint = tmp_path / 'net_g_latest.pth'
    (tmp_path / 'post.yml').write_text(f'network_g: {network}\n')
    with_opt = infer(image, tmp_path / 'opt', checkpoint, '--opt', tmp_path / 'post.yml')
    assert np.array_equal(infer(image, tmp_path / 'stored', checkpoint), with_opt)
    bare = tmp_path / 'bare.pth'
    torch.save(torch.load(checkpoint, weights_only=True)['params'], bare)
    assert not np.array_equal(infer(image, tmp_path / 'guessed', bare), with_opt)  # read as progressive, 4 heads
    assert export(bare, '--opt', tmp_path / 'post.yml', '--safetensors', tmp_path / 'post.safetensors') == 0
    assert np.array_equal(infer(image, tmp_path / 'exported', tmp_path / 'post.safetensors'), with_opt)


def test_unrecognised_weights_are_one_line(tmp_path, capsys, image):
    torch.save({'params': {'encoder.weight': torch.ones(4, 3)}}, tmp_path / 'odd.pth')
    for argv in (['infer', '-i', str(image), '-o', str(tmp_path)], ['export', '--safetensors', str(tmp_path / 'o')]):
        assert main([*argv, '--weights', str(tmp_path / 'odd.pth')]) == 2
        assert_one_line_error(
            capsys.readouterr().err,
            f'{tmp_path / "odd.pth"}: cannot tell the network from the weights (1 tensors, top-level modules encoder)',
            'pass --opt X.yml',
        )
    assert not (tmp_path / 'o').exists()


def test_weights_that_do_not_fit_their_options(tmp_path, capsys):
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, tmp_path / 'w.pth')
    (tmp_path / 'big.yml').write_text(f'network_g: {dict(TINY_CNLRN, n_feats=32)}\n')
    assert export(tmp_path / 'w.pth', '--opt', tmp_path / 'big.yml', '--safetensors', tmp_path / 'o') == 2
    assert_one_line_error(capsys.readouterr().err, 'w.pth: weights do not fit CNLRN: shape (file vs network)')


def test_onnx_goes_to_the_exporter(tmp_path, monkeypatch):
    """--onnx hands the loaded network in eval mode, the file and the opset to onnx_file.export_onnx."""
    calls = []
    onnx_file = types.SimpleNamespace(DEFAULT_OPSET=17, export_onnx=lambda *args: calls.append(args))
    monkeypatch.setitem(sys.modules, 'cnlrn_arch.weights.onnx_file', onnx_file)
    monkeypatch.setattr(cnlrn_arch.weights, 'onnx_file', onnx_file, raising=False)
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, tmp_path / 'w.pth')
    assert export(tmp_path / 'w.pth', '--onnx', tmp_path / 'a.onnx') == 0
    assert export(tmp_path / 'w.pth', '--onnx', tmp_path / 'b.onnx', '--opset', 18) == 0
    assert [(type(net).__name__, net.training, out, opset) for net, out, opset in calls] == [
        ('CNLRN', False, str(tmp_path / 'a.onnx'), 17),
        ('CNLRN', False, str(tmp_path / 'b.onnx'), 18),
    ]


def test_opset_without_onnx(tmp_path, capsys):
    assert export(tmp_path / 'w.pth', '--safetensors', tmp_path / 'o', '--opset', 17) == 2
    assert_one_line_error(capsys.readouterr().err, '--opset applies to --onnx only')


@pytest.mark.parametrize('fmt', ['--onnx', '--safetensors', '--pth'])
def test_the_input_is_never_the_output(tmp_path, capsys, fmt):
    """Exit 0 and the checkpoint replaced by its own export, before."""
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, tmp_path / 'w.pth')
    (tmp_path / 'link.pth').symlink_to(tmp_path / 'w.pth')
    before = (tmp_path / 'w.pth').read_bytes()
    for out in ('w.pth', 'link.pth'):
        assert export(tmp_path / 'w.pth', fmt, tmp_path / out) == 2
        assert_one_line_error(
            capsys.readouterr().err, f'{tmp_path / out} is the input --weights {tmp_path / "w.pth"}: write the output'
        )
    assert (tmp_path / 'w.pth').read_bytes() == before
