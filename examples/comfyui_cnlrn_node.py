"""A ComfyUI custom node for CNLRN (blurry low-resolution image -> sharp x4): copy this file into
``ComfyUI/custom_nodes/`` after ``pip install 'cnlrn_arch[spandrel]'`` in ComfyUI's Python (docs/spandrel.md).

Loading it registers CNLRN with spandrel, so ComfyUI's own "Load Upscale Model" and "Upscale Image (using
Model)" nodes take CNLRN weights from ``models/upscale_models/``; the "CNLRN Upscale" node below also takes
``--weights`` as the ``cnlrn`` commands do: a path, an http(s) URL or a model name (``demo``, ``CNLRN``).
It imports no ComfyUI module: ComfyUI reads ``NODE_CLASS_MAPPINGS`` only.
"""

import functools

import spandrel
import torch

from cnlrn_arch.weights.sources import resolve_weights
from cnlrn_arch.weights.spandrel_support import register_spandrel

register_spandrel()


@functools.lru_cache(maxsize=1)
def load_model(weights):
    """The spandrel descriptor of ``weights`` (a path, URL or model name), on the GPU where there is one."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return spandrel.ModelLoader(device).load_from_file(resolve_weights(weights)).eval()


class CNLRNUpscale:
    """ComfyUI node: IMAGE (batch, height, width, RGB floats in [0, 1]) -> the same, x4."""

    RETURN_TYPES = ('IMAGE',)
    FUNCTION = 'upscale'
    CATEGORY = 'image/upscaling'

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802  (ComfyUI's name)
        return {'required': {'image': ('IMAGE',), 'weights': ('STRING', {'default': 'demo'})}}

    def upscale(self, image, weights):
        """Each image of the batch through the network, one at a time (bounded memory)."""
        model = load_model(weights)
        frames = [model(frame.movedim(-1, 0)[None].to(model.device, model.dtype)) for frame in image]
        return (torch.cat(frames).movedim(1, -1).float().cpu(),)


NODE_CLASS_MAPPINGS = {'CNLRNUpscale': CNLRNUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {'CNLRNUpscale': 'CNLRN Upscale (blurry LR, x4)'}
