"""The ``network_g`` options of a state dict, read from its keys and shapes.

Recognised: :class:`~.cnlrn_arch.CNLRN` (the release, the demo, every ablation),
:class:`~.deblur_arch.CNLRNPreDeblur`, :class:`~.deblur_sr_cascade_arch.DeblurSRCascade`
and BasicSR's ``RCAN`` and ``RRDBNet`` (the baselines).

Some constructor arguments leave no trace in the weights; they get their defaults:

* CNLRN's ``nonlocal_psize`` (the attention heads and their patch sizes: every head's
  Q/K/V embedding is one n_feats x n_feats 1x1 convolution whatever the split),
  ``attn_impl`` (the same results either way) and ``upsampling``: 'post' has exactly
  the keys and shapes of 'progressive', so a bare state dict of the post-upsampling
  ablation cannot be told from the progressive network and is read as the latter;
* RCAN's ``res_scale``, ``img_range`` and ``rgb_mean`` (not parameters);
* RRDBNet's ``scale`` shows only as input channels (x2 and x1 pixel-unshuffle the input first): it is
  read assuming as many input as output channels.

Checkpoints written by this project's models carry their ``network_g``, which says
all of it (see :func:`cnlrn_arch.weights.files.read_weights`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

ShapeMap = Mapping[str, tuple[int, ...]]


def network_options_from_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The ``network_g`` options (``type`` and constructor arguments) whose network has these keys, or None.

    The options are a reading of the keys and shapes: build the network and
    compare its state dict to be sure it fits.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the weights (only keys and shapes are read).
    """
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    return _options_from_shapes(shapes)


def describe_weights(state_dict: Mapping[str, torch.Tensor], limit: int = 6) -> str:
    """'N tensors, top-level modules a, b, c': what a state dict holds, for a one-line message.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the weights.
        limit (int): top-level names listed.
    """
    modules = list(dict.fromkeys(k.split('.')[0] for k in state_dict))
    more = f' (+{len(modules) - limit} more)' if len(modules) > limit else ''
    return f'{len(state_dict)} tensors, top-level modules {", ".join(modules[:limit])}{more}'


def _options_from_shapes(shapes: ShapeMap) -> dict[str, Any] | None:
    for recognise in RECOGNISERS:
        options = recognise(shapes)
        if options is not None:
            return options
    return None


def _indices(shapes: ShapeMap, prefix: str, suffix: str = '') -> list[int]:
    """The sorted distinct integers ``i`` of keys starting with ``prefix + str(i) + '.' + suffix``."""
    pattern = re.compile(rf'{re.escape(prefix)}(\d+)\.{re.escape(suffix)}')
    return sorted({int(m.group(1)) for key in shapes if (m := pattern.match(key))})


def _count(shapes: ShapeMap, prefix: str, suffix: str = '') -> int:
    """How many consecutive modules ``prefix0.``, ``prefix1.``, ... have a key continuing with ``suffix``."""
    indices = _indices(shapes, prefix, suffix)
    return len(indices) if indices == list(range(len(indices))) else 0


def _sub_shapes(shapes: ShapeMap, prefix: str) -> dict[str, tuple[int, ...]]:
    """The entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}


def _deblur_options(shapes: ShapeMap) -> dict[str, Any] | None:
    """``n_colors``, ``n_feats``, ``n_deblur_blocks`` and whether there is an image head, from ``DeblurNet.*``."""
    first = shapes.get('DeblurNet.inBlock.0.body.0.weight')
    if first is None or len(first) != 4:
        return None
    n_blocks = _count(shapes, 'DeblurNet.body.')
    if not n_blocks:
        return None
    return dict(
        n_colors=first[1],
        n_feats=first[0],
        n_deblur_blocks=n_blocks,
        image_head='DeblurNet.outBlock.3.body.0.weight' in shapes,
    )


def _cnlrn(shapes: ShapeMap) -> dict[str, Any] | None:
    """CNLRN: ``SRNet.*`` of NLRG stages, after ``DeblurNet.*`` or a ``head`` convolution."""
    tail = shapes.get('SRNet.tail.1.weight')
    if tail is None or len(tail) != 4:
        return None
    options: dict[str, Any] = {'type': 'CNLRN', 'n_colors': tail[0]}
    deblur = _deblur_options(shapes)
    if deblur is not None and not deblur['image_head']:
        options['n_deblur_blocks'] = deblur['n_deblur_blocks']
    elif 'head.weight' in shapes:
        options['with_deblur'] = False
    else:
        return None
    first_subgroup = 'SRNet.body.0.body.0.'
    sizes = dict(
        n_nlrgs_body=_count(shapes, 'SRNet.body.', 'body.'),
        n_nlrgs_up1=_count(shapes, 'SRNet.upsample_body_1.', 'body.'),
        n_nlrgs_up2=_count(shapes, 'SRNet.upsample_body_2.', 'body.'),
        n_subgroups=_count(shapes, 'SRNet.body.0.body.', 'rcab_body.'),
        n_rcabs=_count(shapes, f'{first_subgroup}rcab_body.', 'body.'),
        n_feats=shapes['SRNet.tail.0.weight'][0] if 'SRNet.tail.0.weight' in shapes else 0,
    )
    if not all(sizes.values()):
        return None
    options.update(sizes)
    if not any(k.startswith(f'{first_subgroup}nonlocal_block.') for k in shapes):
        options['nonlocal_block'] = False
    return options


def _predeblur_or_cascade(shapes: ShapeMap) -> dict[str, Any] | None:
    """CNLRNPreDeblur (``DeblurNet.*`` with the image head), or DeblurSRCascade where ``SRNet.*`` follows."""
    deblur = _deblur_options(shapes)
    if deblur is None or not deblur['image_head']:
        return None
    options = {k: deblur[k] for k in ('n_colors', 'n_feats', 'n_deblur_blocks')}
    sr_shapes = _sub_shapes(shapes, 'SRNet.')
    if not sr_shapes:
        return {'type': 'CNLRNPreDeblur', **options}
    sr_opt = _options_from_shapes(sr_shapes)
    return None if sr_opt is None else {'type': 'DeblurSRCascade', **options, 'sr_opt': sr_opt}


def _rcan(shapes: ShapeMap) -> dict[str, Any] | None:
    """BasicSR's RCAN: residual groups of RCABs, x2^n (or x3) pixel-shuffle upsampling."""
    first, last = shapes.get('conv_first.weight'), shapes.get('conv_last.weight')
    squeeze = shapes.get('body.0.residual_group.0.rcab.3.attention.1.weight')
    if first is None or last is None or squeeze is None:
        return None
    num_feat = first[0]
    upsample_convs = _indices(shapes, 'upsample.', 'weight')
    if not upsample_convs:
        return None
    upscale = 3 if shapes[f'upsample.{upsample_convs[0]}.weight'][0] == 9 * num_feat else 2 ** len(upsample_convs)
    return dict(
        type='RCAN',
        num_in_ch=first[1],
        num_out_ch=last[0],
        num_feat=num_feat,
        num_group=_count(shapes, 'body.', 'residual_group.'),
        num_block=_count(shapes, 'body.0.residual_group.', 'rcab.'),
        squeeze_factor=num_feat // squeeze[0],
        upscale=upscale,
    )


def _rrdbnet(shapes: ShapeMap) -> dict[str, Any] | None:
    """BasicSR's RRDBNet: x4, or x2 / x1 after a pixel unshuffle that multiplies the input channels by 4 / 16."""
    first, last = shapes.get('conv_first.weight'), shapes.get('conv_last.weight')
    grow = shapes.get('body.0.rdb1.conv1.weight')
    if first is None or last is None or grow is None:
        return None
    num_out_ch = last[0]
    scales = {num_out_ch: 4, 4 * num_out_ch: 2, 16 * num_out_ch: 1}
    scale = scales.get(first[1])
    if scale is None:
        return None
    return dict(
        type='RRDBNet',
        num_in_ch=first[1] // (16 // scale**2),
        num_out_ch=num_out_ch,
        num_feat=first[0],
        num_block=_count(shapes, 'body.', 'rdb1.'),
        num_grow_ch=grow[0],
        scale=scale,
    )


RECOGNISERS: tuple[Callable[[ShapeMap], dict[str, Any] | None], ...] = (_cnlrn, _predeblur_or_cascade, _rcan, _rrdbnet)
