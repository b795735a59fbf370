"""Helpers shared by the CNLRN networks: argument checks, size padding, residuals."""

import torch
import torch.nn.functional as F


def check_positive(**values):
    """Raise ``ValueError`` naming the first argument that is not a positive int."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')


def pad_to_multiple(x, multiple):
    """Pad the bottom and right of an NCHW tensor so H and W divide ``multiple``.

    Reflection keeps the borders natural; sides too short to reflect that far
    are replicated instead. Returns the input itself when no padding is needed.
    """
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def add_residual(branch, skip):
    """``branch + skip``, written into ``branch`` when autograd is not recording.

    ``branch`` must be a freshly computed tensor that nothing else holds (the
    output of a block's body). Adding in place saves one feature map and its
    page faults per residual connection at inference; under autograd the
    out-of-place sum keeps tensors saved for backward intact.
    """
    if torch.is_grad_enabled() and (branch.requires_grad or skip.requires_grad):
        return branch + skip
    return branch.add_(skip)
