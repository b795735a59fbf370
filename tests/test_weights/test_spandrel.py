"""spandrel's ModelLoader loads CNLRN's networks once :func:`register_spandrel` has registered them."""

import importlib
import os
import sys

import cv2
import numpy as np
import pytest
import torch

from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.archs.deblur_sr_cascade_arch import DeblurSRCascade
from cnlrn_arch.weights.files import read_weights, write_safetensors
from cnlrn_base.errors import UserError
from cnlrn_base.project import DEMO_CHECKPOINT
from tests.helpers import DATA_DIR, TINY_PREDEBLUR_ARGS, infer, noise, tiny_net

spandrel = pytest.importorskip('spandrel')
from cnlrn_arch.weights.spandrel_support import register_spandrel  # noqa: E402  (needs spandrel)

TINY_RCAN = dict(
    type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=1, num_block=1, squeeze_factor=16, upscale=2
)


@pytest.fixture(scope='module')
def loader():
    register_spandrel()
    return spandrel.ModelLoader()


def test_register_twice_adds_nothing_the_second_time():
    registry = spandrel.ArchRegistry()
    assert [s.architecture.id for s in register_spandrel(registry)] == ['CNLRN', 'CNLRNPreDeblur', 'DeblurSRCascade']
    assert register_spandrel(registry) == []


def test_demo_checkpoint_descriptor(loader):
    model = loader.load_from_file(DEMO_CHECKPOINT)
    assert isinstance(model, spandrel.ImageModelDescriptor)
    assert (model.architecture.id, model.purpose, model.scale) == ('CNLRN', 'SR', 4)
    assert (model.input_channels, model.output_channels, model.tags) == (3, 3, ['32nf'])
    assert model.size_requirements == spandrel.SizeRequirements(multiple_of=4)
    assert model.supports_half and model.supports_bfloat16
    assert model.tiling == spandrel.ModelTiling.DISCOURAGED  # global attention


def test_output_equals_cnlrn_infer(loader, tmp_path):
    """The descriptor (spandrel's padding, clamp) and cnlrn infer write the same pixels; sides not multiples of 4."""
    bgr = noise((18, 23, 3), seed=7)
    cv2.imwrite(str(tmp_path / 'in.png'), bgr)
    assert infer('-i', tmp_path / 'in.png', '-o', tmp_path / 'out', '--weights', DEMO_CHECKPOINT) == 0
    by_infer = cv2.imread(str(tmp_path / 'out' / 'in_cnlrn.png'))
    model = loader.load_from_file(DEMO_CHECKPOINT)
    rgb = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 255
    out = model(rgb)[0].permute(1, 2, 0).numpy()
    by_spandrel = cv2.cvtColor(np.round(out * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert by_spandrel.shape == by_infer.shape == (72, 92, 3)
    difference = np.abs(by_spandrel.astype(int) - by_infer).max()
    print(f'max difference spandrel vs cnlrn infer: {difference} (of 255)')
    assert difference <= 1  # float rounding of one forward pass each


def test_safetensors_and_params_ema(loader, tmp_path):
    weights = read_weights(DEMO_CHECKPOINT)
    write_safetensors(weights.state_dict, tmp_path / 'demo.safetensors', weights.network_opt)
    other = {k: v + 0.01 for k, v in weights.state_dict.items()}
    torch.save({'params': other, 'params_ema': weights.state_dict}, tmp_path / 'ema.pth')
    for name in ('demo.safetensors', 'ema.pth'):
        model = loader.load_from_file(tmp_path / name)
        assert model.architecture.id == 'CNLRN'
        loaded = model.model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in weights.state_dict.items()), name


def test_authors_key_layout(loader, tmp_path):
    """A bare state dict with the keys and shapes of the authors' release (tests/data's list) is the full CNLRN."""
    with open(os.path.join(DATA_DIR, 'cnlrn_default_keys.tsv'), encoding='utf-8') as f:
        rows = [line.split('\t') for line in f.read().splitlines()[1:]]
    state = {key: torch.zeros([int(n) for n in shape.split('x')]) for key, shape in rows}
    torch.save(state, tmp_path / 'CNLRN_release_layout.pth')
    model = loader.load_from_file(tmp_path / 'CNLRN_release_layout.pth')
    assert (model.architecture.id, model.scale, model.tags) == ('CNLRN', 4, ['64nf'])


@pytest.mark.parametrize(
    'make, arch, scale, tags',
    [
        (lambda: tiny_net(with_deblur=False), 'CNLRN', 4, ['16nf', 'no-deblur']),
        (lambda: tiny_net(nonlocal_block=False), 'CNLRN', 4, ['16nf', 'no-nonlocal']),
        (lambda: CNLRNPreDeblur(**TINY_PREDEBLUR_ARGS), 'CNLRNPreDeblur', 1, ['16nf']),
        (lambda: DeblurSRCascade(TINY_RCAN, **TINY_PREDEBLUR_ARGS), 'DeblurSRCascade', 2, ['16nf', 'RCAN']),
    ],
    ids=['without-deblur', 'without-nonlocal', 'predeblur', 'cascade-rcan-x2'],
)
def test_ablations_and_deblurring_module(loader, tmp_path, make, arch, scale, tags):
    net = make().eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'w.pth')
    model = loader.load_from_file(tmp_path / 'w.pth')
    assert (model.architecture.id, model.scale, model.tags) == (arch, scale, tags)
    assert model.purpose == ('SR' if scale > 1 else 'Restoration')
    x = torch.rand(1, 3, 8, 12)
    with torch.inference_mode():
        assert torch.allclose(model(x), net(x).clamp(0, 1), atol=1e-6)


def test_weights_that_do_not_fit_are_not_detected(loader, tmp_path):
    """One mis-shaped tensor and the detector's reading no longer fits: spandrel finds no architecture."""
    state = tiny_net().state_dict()
    state['SRNet.tail.0.bias'] = torch.zeros(3)
    torch.save(state, tmp_path / 'w.pth')
    with pytest.raises(spandrel.UnsupportedModelError):
        loader.load_from_file(tmp_path / 'w.pth')


@pytest.mark.parametrize('dtype, tolerance', [(torch.bfloat16, 0.02), (torch.float16, 0.005)])
def test_half_precisions_work(loader, dtype, tolerance):
    """The precisions the descriptor claims give float32's output within a few levels of 255."""
    model = loader.load_from_file(DEMO_CHECKPOINT)
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    reference = model(x)
    assert torch.isfinite(model.to(dtype)(x.to(dtype))).all()
    assert (model(x.to(dtype)).float() - reference).abs().max() < tolerance


def test_without_spandrel_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, 'spandrel', None)  # import spandrel raises ImportError
    monkeypatch.delitem(sys.modules, 'cnlrn_arch.weights.spandrel_support')
    with pytest.raises(UserError, match=r"spandrel support need the 'spandrel' package.*\.\[spandrel\]"):
        importlib.import_module('cnlrn_arch.weights.spandrel_support')
