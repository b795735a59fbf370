"""x8 geometric self-ensemble (the paper's "Ours#")."""

import torch


def _transform(x, flip, rot):
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, rot, dims=(-2, -1))


def _inverse(x, flip, rot):
    x = torch.rot90(x, -rot, dims=(-2, -1))
    return x.flip(-1) if flip else x


def self_ensemble(net, x):
    """Average ``net`` over the 8 flips/90-degree rotations of ``x``, each undone on the output."""
    out = 0
    for flip in (False, True):
        for rot in range(4):
            out = out + _inverse(net(_transform(x, flip, rot)), flip, rot)
    return out / 8
