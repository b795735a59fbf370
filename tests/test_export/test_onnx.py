"""ONNX export: onnxruntime runs the graph as torch runs the network, at any size; OnnxNetwork serves upscale()."""

import sys

import cv2
import numpy as np
import pytest
import torch

from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.inference.image_io import UserImage
from cnlrn_arch.inference.network import load_network
from cnlrn_arch.inference.onnx_backend import OnnxNetwork
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.upscale import upscale
from cnlrn_arch.weights.onnx_file import MAX_OPSET, MIN_OPSET, export_onnx
from cnlrn_base.errors import UserError
from cnlrn_cli.main import main
from tests.helpers import assert_one_line_error, decoded_frames, infer, noise, tiny_net

TOLERANCE = 1e-4  # max abs, on outputs in [0, 1]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """attn_impl -> (torch network, its ONNX file); two heads with different patch sizes."""
    root = tmp_path_factory.mktemp('onnx')
    models = {}
    for attn_impl in ('sdpa', 'naive'):
        net = tiny_net(nonlocal_psize=(4, 2), attn_impl=attn_impl)
        export_onnx(net, root / f'{attn_impl}.onnx')
        models[attn_impl] = net, root / f'{attn_impl}.onnx'
    return models


def max_abs_difference(net, onnx_net, x):
    with torch.inference_mode():
        expected, out = net(x), onnx_net(x)
    assert out.shape == expected.shape and out.dtype == torch.float32
    return (out - expected).abs().max().item()


@pytest.mark.parametrize('attn_impl', ['sdpa', 'naive'])
def test_onnxruntime_matches_torch_at_sizes_the_export_never_saw(exported, attn_impl):
    """The graph alone (both sizes reflect, no padding by OnnxNetwork), one size not a multiple of 4, batch 2."""
    net, path = exported[attn_impl]
    session = OnnxNetwork(path).session
    for shape in [(1, 3, 16, 20), (2, 3, 13, 22)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = net(x).numpy()
        (out,) = session.run(None, {'lq': x.numpy()})
        assert out.shape == expected.shape
        assert np.abs(out - expected).max() <= TOLERANCE, shape


def test_sides_shorter_than_the_padding_are_padded_as_the_network_pads_them(exported):
    """Reflecting 3 rows off 1 is impossible: the network replicates instead, and OnnxNetwork does it for the graph."""
    net, path = exported['sdpa']
    assert max_abs_difference(net, OnnxNetwork(path), torch.rand(1, 3, 1, 6)) <= TOLERANCE


@pytest.mark.parametrize('tile, ensemble', [(None, True), (7, False)], ids=['whole_self_ensemble', 'tiles'])
def test_upscale_with_onnxruntime_gives_the_torch_image(exported, tile, ensemble):
    net, path = exported['sdpa']
    image = UserImage(noise((11, 14, 3)))
    settings = InferenceSettings(tile=tile, tile_pad=2, self_ensemble=ensemble)
    onnx_net = load_network(path, backend='onnxruntime')
    assert (onnx_net.backend, onnx_net.scale, onnx_net.size_multiple) == ('onnxruntime', 4, net.size_multiple)
    outputs = [np.concatenate(list(upscale(network, image, settings))) for network in (net, onnx_net.module)]
    assert np.abs(outputs[0].astype(int) - outputs[1]).max() <= 1


def test_autocast_is_refused(exported):
    onnx_net = OnnxNetwork(exported['sdpa'][1])
    with torch.autocast('cpu', dtype=torch.bfloat16), pytest.raises(UserError, match='--bf16'):
        onnx_net(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize('content', [None, b'', b'not a protobuf at all'], ids=['missing', 'empty', 'garbage'])
def test_a_file_that_is_not_an_onnx_model_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / 'model.onnx'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_network(path, backend='onnxruntime')
    assert str(path) in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize('opset', [MIN_OPSET - 1, MAX_OPSET + 1])
def test_unsupported_opsets_are_refused(tmp_path, opset):
    with pytest.raises(UserError, match=f'opset {opset} .* from {MIN_OPSET} to {MAX_OPSET}'):
        export_onnx(tiny_net(), tmp_path / 'model.onnx', opset)
    assert not list(tmp_path.iterdir())


def test_a_missing_folder_is_one_line_and_leaves_nothing(tmp_path):
    path = tmp_path / 'missing_folder' / 'model.onnx'
    with pytest.raises(UserError, match=f'cannot write {path}'):
        export_onnx(tiny_net(), path)
    assert not list(tmp_path.iterdir())


def test_export_without_onnx_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnx', None)  # a None entry makes `import onnx` raise ImportError
    with pytest.raises(UserError, match="ONNX exports need the 'onnx' package.*pip install onnx"):
        export_onnx(tiny_net(), tmp_path / 'model.onnx')


def test_the_onnxruntime_backend_without_onnxruntime_says_what_to_install(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(UserError, match="need the 'onnxruntime' package.*pip install onnxruntime"):
        load_network(exported['sdpa'][1], backend='onnxruntime')


def test_cnlrn_export_onnx_then_cnlrn_infer_with_onnxruntime_on_an_image_and_a_video(tmp_path, capsys):
    """The network found from the weights alone, exported, then run by onnxruntime as torch runs it (lossless video)."""
    torch.save({'params': tiny_net().state_dict()}, tmp_path / 'w.pth')
    assert main(['export', '--weights', str(tmp_path / 'w.pth'), '--onnx', str(tmp_path / 'w.onnx')]) == 0
    cv2.imwrite(str(tmp_path / 'x.png'), noise((10, 13, 3)))
    make_demo_clip(tmp_path / 'clip.mp4', frames=3, size=(20, 12))
    inputs = [str(tmp_path / 'x.png'), str(tmp_path / 'clip.mp4')]
    for backend, weights in (('torch', 'w.pth'), ('onnxruntime', 'w.onnx')):
        argv = ['-i', *inputs, '-o', str(tmp_path / backend), '--weights', str(tmp_path / weights), '--lossless']
        assert main(['infer', *argv, '--backend', backend, '--device', 'cpu']) == 0
    images = [cv2.imread(str(tmp_path / backend / 'x_cnlrn.png')).astype(int) for backend in ('torch', 'onnxruntime')]
    assert images[0].shape == (40, 52, 3) and np.abs(images[0] - images[1]).max() <= 1
    videos = [decoded_frames(tmp_path / backend / 'clip_cnlrn.mp4')[0] for backend in ('torch', 'onnxruntime')]
    assert len(videos[0]) == len(videos[1]) == 3
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(*videos)) <= 1


@pytest.mark.parametrize(
    'options, named',
    [(['--bf16'], '--bf16'), (['--channels-last', '--compile'], '--channels-last --compile')],
)
def test_pytorch_options_with_the_onnxruntime_backend_are_refused_up_front(exported, tmp_path, capsys, options, named):
    argv = ['infer', '-i', str(tmp_path / 'none.png'), '-o', str(tmp_path / 'out'), '--backend', 'onnxruntime']
    assert main([*argv, '--weights', str(exported['sdpa'][1]), *options]) == 2
    assert f'{named}: PyTorch options, not for --backend onnxruntime' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def image_graph(path, scale=4, shape=('n', 3, 'h', 'w'), dtype='float', outputs=1, name='x', metadata=None):
    """Write the ONNX file ``path`` of a nearest-neighbour upscaler by ``scale`` whose input ``name`` has ``shape``."""
    import onnx
    from onnx import TensorProto, helper

    elem = {'float': TensorProto.FLOAT, 'int64': TensorProto.INT64}[dtype]
    nodes = [helper.make_node('Cast', [name], ['image'], to=TensorProto.FLOAT)]
    scales = helper.make_tensor('scales', TensorProto.FLOAT, [4], [1, 1, scale, scale])
    nodes.append(helper.make_node('Resize', ['image', '', 'scales'], ['y0'], mode='nearest'))
    nodes += [helper.make_node('Identity', ['y0'], [f'y{i}']) for i in range(1, outputs)]
    graph = helper.make_graph(
        nodes,
        'upscaler',
        [helper.make_tensor_value_info(name, elem, list(shape))],
        [helper.make_tensor_value_info(f'y{i}', TensorProto.FLOAT, None) for i in range(outputs)],
        [scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx.helper.set_model_props(model, metadata or {})
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    'graph, message',
    [
        (dict(scale=1), 'the network upscales x1, not x4'),
        (dict(scale=100), 'the network upscales x100, not x4'),
        (dict(shape=('n', 1, 'h', 'w')), "its input x has shape ['n', 1, 'h', 'w'], not (N, 3, H, W) RGB images"),
        (dict(dtype='int64'), 'its input x is tensor(int64), not float32 images'),
        (dict(outputs=2), 'the graph has 1 inputs and 2 outputs, not one image each'),
        (dict(shape=(1, 3, 64, 64)), 'its input x has a fixed height or width [64, 64]'),
        (dict(metadata={'size_multiple': '3000'}), "metadata size_multiple '3000' must be an integer from 1 to 256"),
        (dict(metadata={'size_multiple': 'x'}), "metadata size_multiple 'x' must be an integer from 1 to 256"),
    ],
    ids=['x1', 'x100', 'gray', 'int64', 'two_outputs', 'fixed_size', 'size_multiple_3000', 'size_multiple_text'],
)
def test_onnx_graphs_other_than_x4_rgb_image_networks_are_one_line_before_any_image_is_read(
    tmp_path, capsys, graph, message
):
    path = image_graph(tmp_path / 'other.onnx', **graph)
    with pytest.raises(UserError) as err:
        load_network(path, backend='onnxruntime')
    assert_one_line_error(str(err.value), f'{path}: {message}')
    cv2.imwrite(str(tmp_path / 'x.png'), noise((6, 5, 3)))
    argv = ['-i', tmp_path / 'x.png', '-o', tmp_path / 'out', '--backend', 'onnxruntime', '--weights', path]
    assert infer(*argv) == 2
    assert_one_line_error(capsys.readouterr().err, message)
    assert not (tmp_path / 'out').exists()


def test_an_x4_rgb_graph_of_another_input_name_and_size_multiple_runs(tmp_path):
    network = load_network(
        image_graph(tmp_path / 'm.onnx', name='input', metadata={'size_multiple': '8'}), backend='onnxruntime'
    )
    assert (network.scale, network.size_multiple) == (4, 8)
    x = torch.rand(1, 3, 5, 7)
    np.testing.assert_array_equal(network.module(x).numpy(), torch.nn.functional.interpolate(x, scale_factor=4).numpy())
