"""Helpers shared by the CNLRN networks: argument checks, size padding, residuals."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def check_positive(**values: object) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive int.

    Args:
        **values: the arguments to check, by the names the error should give.
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of an NCHW tensor so H and W divide ``multiple``.

    Reflection keeps the borders natural; sides too short to reflect that far
    are replicated instead.

    Args:
        x (torch.Tensor): (N, C, H, W) input.
        multiple (int): what the padded height and width must be multiples of.

    Returns:
        torch.Tensor: (N, C, H', W'), or ``x`` itself when no padding is needed.
    """
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if exporting():
        # a recorded graph takes no branch on its input's size: it always reflects, which needs sides over the padding
        return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def add_residual(branch: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``branch + skip``, written into ``branch`` when autograd is not recording.

    Adding in place saves one feature map and its page faults per residual
    connection at inference; under autograd the out-of-place sum keeps
    tensors saved for backward intact.

    Args:
        branch (torch.Tensor): a freshly computed tensor that nothing else
            holds (the output of a block's body).
        skip (torch.Tensor): the shortcut, left unchanged.
    """
    if records_graph(branch, skip):
        return branch + skip
    return branch.add_(skip)


def records_graph(*tensors: torch.Tensor) -> bool:
    """Whether autograd or an exporter records operations on ``tensors``: in-place updates and strips would break it."""
    return exporting() or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def exporting() -> bool:
    """Whether the network is being recorded as a graph (ONNX export, ``torch.export``, TorchScript tracing).

    A recorded graph must serve every input size, so the network then takes no
    branch that depends on its input's size.
    """
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


# Pixels per strip (64 rows of a REDS frame's 2x map) and the smallest output
# that is cut into strips at all: below it, full maps are cheap enough.
STRIP_PIXELS = 64 * 640
MIN_STRIPPED_PIXELS = 4 * STRIP_PIXELS


def run_in_strips(
    layers: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, halo: int, scale: int = 1
) -> torch.Tensor:
    """``layers(x)`` computed strip by strip when autograd is not recording.

    Each strip is computed with its halo rows and trimmed, so the result
    equals the full computation while the intermediates of ``layers`` only
    ever exist for one strip: at a REDS frame's 2x and 4x stages they are the
    largest tensors of the network.

    Args:
        layers (Callable[[torch.Tensor], torch.Tensor]): local layers: each
            output row depends only on input rows within ``halo`` of it.
        x (torch.Tensor): (N, C, H, W) input.
        halo (int): input rows beyond a strip that ``layers`` read.
        scale (int): output rows per input row.

    Returns:
        torch.Tensor: ``layers(x)``, (N, C', scale * H, scale * W); channels-last when stripped.
    """
    if records_graph(x):
        return layers(x)
    height, width = x.shape[-2:]
    rows = max(1, STRIP_PIXELS // (width * scale))
    if height * width * scale * scale < MIN_STRIPPED_PIXELS or height <= rows:
        return layers(x)
    out = None
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        start, stop = max(0, top - halo), min(height, bottom + halo)
        strip = layers(x[..., start:stop, :])
        if out is None:
            out = torch.empty(
                x.shape[0],
                strip.shape[1],
                height * scale,
                width * scale,
                dtype=strip.dtype,
                device=strip.device,
                memory_format=torch.channels_last,
            )
        out[..., top * scale : bottom * scale, :] = strip[..., (top - start) * scale : (bottom - start) * scale, :]
        del strip
    return out
