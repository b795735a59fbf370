"""CNLRN's networks for spandrel, the model loader of chaiNNer and ComfyUI: :func:`register_spandrel`.

spandrel 0.4 finds architectures through its registry (``spandrel.MAIN_REGISTRY``), not through
entry points, so one call adds them::

    from cnlrn_arch.weights.spandrel_support import register_spandrel
    register_spandrel()
    model = spandrel.ModelLoader().load_from_file('CNLRN_demo.pth')  # an ImageModelDescriptor

Each network is recognised from its keys and shapes by this project's detector
(:mod:`~cnlrn_arch.weights.config_from_weights`) and built only where that reading fits every tensor:
:class:`~cnlrn_arch.archs.cnlrn_arch.CNLRN` (the release, the demo checkpoint, the ablations
without deblurring module or without non-local blocks),
:class:`~cnlrn_arch.archs.deblur_arch.CNLRNPreDeblur` (the deblurring module alone, x1) and
:class:`~cnlrn_arch.archs.deblur_sr_cascade_arch.DeblurSRCascade`. spandrel hands over the state dict
only (``params_ema``, else ``params``, of a BasicSR checkpoint): the ``network_g`` options this
project stores beside it are not seen, so what leaves no trace in the weights takes its default
(``nonlocal_psize``, ``upsampling``; see the detector's module).

Importing this module imports spandrel: without it, one line says what to install.
"""

from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from cnlrn_arch.options.check import check_buildable
from cnlrn_arch.weights.config_from_weights import network_options_from_weights
from cnlrn_arch.weights.files import describe_mismatch
from cnlrn_base.errors import UserError
from cnlrn_base.optional import import_optional

spandrel = import_optional('spandrel', 'spandrel support')

# fp16 and bf16 weights and inputs give the demo checkpoint's float32 output within 0.0011 and 0.0077
# (of 1; 2-core CPU, docs/spandrel.md): both work
SUPPORTS_HALF = True
SUPPORTS_BFLOAT16 = True
# LR side of the meta-device input that reads a network's scale (no memory, no compute)
PROBE_SIDE = 8


class CNLRNFamilyArch(spandrel.Architecture):
    """One network type of this project (``type`` of its ``network_g``) as a spandrel architecture.

    Args:
        network_type (str): 'CNLRN', 'CNLRNPreDeblur' or 'DeblurSRCascade'; also the architecture's id.
    """

    def __init__(self, network_type: str):
        super().__init__(id=network_type, detect=self._detect_options)

    def _detect_options(self, state_dict: dict[str, Any]) -> bool:
        return self.network_options(state_dict) is not None

    def network_options(self, state_dict: dict[str, Any]) -> dict[str, Any] | None:
        """The ``network_g`` of this type that has exactly the keys and shapes of ``state_dict``, else None.

        Args:
            state_dict (dict[str, Any]): the weights, as spandrel canonicalised them.
        """
        if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
            return None
        options = network_options_from_weights(state_dict)
        if options is None or options['type'] != self.id:
            return None
        try:
            network = check_buildable(options, self.id)  # on the meta device: shapes only
        except UserError:
            return None
        return None if describe_mismatch(network.state_dict(), state_dict) else options

    def load(self, state_dict: dict[str, Any]) -> spandrel.ImageModelDescriptor:
        """The network holding ``state_dict``, described (scale, size multiple, precisions, channels).

        Args:
            state_dict (dict[str, Any]): weights that :meth:`detect` accepted.

        Raises:
            UserError: when the weights fit no network of this type.
        """
        options = self.network_options(state_dict)
        if options is None:
            raise UserError(f'these weights are not a {self.id} network (spandrel detected it by mistake)')
        network = ARCH_REGISTRY.get(self.id)(**{k: v for k, v in options.items() if k != 'type'})
        multiple = getattr(network, 'size_multiple', 1)
        scale = _scale(options, multiple)
        nonlocal_attention = any('nonlocal_block.' in key for key in state_dict)
        return spandrel.ImageModelDescriptor(
            network,
            state_dict,
            architecture=self,
            purpose='SR' if scale > 1 else 'Restoration',
            tags=_tags(options),
            supports_half=SUPPORTS_HALF,
            supports_bfloat16=SUPPORTS_BFLOAT16,
            scale=scale,
            input_channels=options['n_colors'],
            output_channels=options['n_colors'],
            size_requirements=spandrel.SizeRequirements(multiple_of=multiple),
            # the non-local attention reads the whole image: a tile sees less context (docs/inference.md)
            tiling=spandrel.ModelTiling.DISCOURAGED if nonlocal_attention else spandrel.ModelTiling.SUPPORTED,
        )


def _scale(options: dict[str, Any], multiple: int) -> int:
    """The upscaling factor of the network of ``options``, read from its output's size on the meta device."""
    network = check_buildable(options, options['type'])
    side = -(-PROBE_SIDE // multiple) * multiple
    with torch.device('meta'):
        out = network(torch.zeros(1, options['n_colors'], side, side))
    return out.shape[-1] // side


def _tags(options: dict[str, Any]) -> list[str]:
    """spandrel's short description of a network: feature channels, then its ablations or its SR network."""
    tags = [f'{options["n_feats"]}nf']
    if options.get('with_deblur') is False:
        tags.append('no-deblur')
    if options.get('nonlocal_block') is False:
        tags.append('no-nonlocal')
    if 'sr_opt' in options:
        tags.append(options['sr_opt']['type'])
    return tags


ARCHITECTURES = tuple(CNLRNFamilyArch(t) for t in ('CNLRN', 'CNLRNPreDeblur', 'DeblurSRCascade'))


def register_spandrel(registry: spandrel.ArchRegistry | None = None) -> list[spandrel.ArchSupport]:
    """Add CNLRN, CNLRNPreDeblur and DeblurSRCascade to spandrel's registry; a second call adds nothing.

    Args:
        registry (spandrel.ArchRegistry | None): the registry to extend (default: ``spandrel.MAIN_REGISTRY``,
            which every ``ModelLoader()`` uses).

    Returns:
        list[spandrel.ArchSupport]: the architectures added by this call.
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    supports = [spandrel.ArchSupport.from_architecture(arch) for arch in ARCHITECTURES]
    return registry.add(*supports, ignore_duplicates=True)
