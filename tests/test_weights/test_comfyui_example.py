"""examples/comfyui_cnlrn_node.py, called as ComfyUI calls a custom node (no ComfyUI installed)."""

import importlib.util
import os

import pytest
import torch

from cnlrn_arch.weights.files import read_state_dict
from cnlrn_base.project import DEMO_CHECKPOINT
from tests.helpers import REPO_DIR

spandrel = pytest.importorskip('spandrel')


@pytest.fixture(scope='module')
def node_module():
    path = os.path.join(REPO_DIR, 'examples', 'comfyui_cnlrn_node.py')
    spec = importlib.util.spec_from_file_location('comfyui_cnlrn_node', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_upscales_a_batch_as_the_descriptor_does(node_module):
    node_class = node_module.NODE_CLASS_MAPPINGS['CNLRNUpscale']
    inputs = node_class.INPUT_TYPES()['required']
    assert inputs['image'] == ('IMAGE',) and node_class.RETURN_TYPES == ('IMAGE',)
    images = torch.rand(2, 10, 13, 3, generator=torch.Generator().manual_seed(0))  # ComfyUI's IMAGE: B, H, W, C
    (out,) = getattr(node_class(), node_class.FUNCTION)(image=images, weights=inputs['weights'][1]['default'])
    assert out.shape == (2, 40, 52, 3) and out.dtype == torch.float32
    model = node_module.load_model('demo')
    expected = model(images[1].movedim(-1, 0)[None])[0].movedim(0, -1)
    assert torch.equal(out[1], expected)


def test_comfyui_load_upscale_model_takes_cnlrn_after_import(node_module):
    """ComfyUI's Load Upscale Model: ModelLoader().load_from_state_dict, then it requires an image descriptor."""
    model = spandrel.ModelLoader().load_from_state_dict(read_state_dict(DEMO_CHECKPOINT))
    assert isinstance(model, spandrel.ImageModelDescriptor) and model.architecture.id == 'CNLRN'
