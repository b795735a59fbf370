"""Helpers shared by the CNLRN networks: argument checks and size padding."""

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
