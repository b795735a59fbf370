"""Global patch-based multi-head self-attention: the non-local block of CNLRN.

Each head owns a contiguous slice of the channels and a patch size p. It cuts
its (C/heads, H, W) map into non-overlapping p x p patches, treats every patch
as one token of dimension (C/heads)*p*p and attends over all tokens of the
image (global, not windowed). Heads are concatenated back along channels.

The default path calls ``scaled_dot_product_attention``, whose fused kernels
never hold the N x N score matrix (N = HW/p^2 tokens; 14,400 at a REDS frame's
2x stage, 0.83 GB of float32 scores per head). ``attn_impl='naive'`` computes
that matrix explicitly, as the authors' release does; it is kept to compare
against in tests and benchmarks.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ATTN_IMPLS = ('sdpa', 'naive')


def image_to_tokens(x, heads, patch):
    """(B, heads*c, H, W) -> (B, heads, N, c*patch*patch), N = H*W/patch^2."""
    b, channels, h, w = x.shape
    c = channels // heads
    x = x.view(b, heads, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, heads, (h // patch) * (w // patch), c * patch * patch)


def tokens_to_image(tokens, patch, height, width):
    """Inverse of :func:`image_to_tokens`."""
    b, heads, _, dim = tokens.shape
    c = dim // (patch * patch)
    x = tokens.view(b, heads, height // patch, width // patch, c, patch, patch)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, heads * c, height, width)


def naive_attention(query, key, value):
    """softmax(Q K^T / sqrt(d)) V with the score matrix written out."""
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    return torch.matmul(scores.softmax(dim=-1), value)


class PatchMultiHeadAttention(nn.Module):
    """Q/K/V 1x1 embeddings, per-head patch attention, 3x3 output projection.

    Args:
        n_feats: channels in and out; split evenly across the heads.
        patch_sizes: one patch size per head.
        attn_impl: 'sdpa' (fused, memory-efficient) or 'naive' (explicit matrix).
    """

    def __init__(self, n_feats, patch_sizes, attn_impl='sdpa'):
        super().__init__()
        self.patch_sizes = tuple(patch_sizes)
        self.head_channels = n_feats // len(self.patch_sizes)
        self.attn_impl = attn_impl
        # registration order mirrors the release so state dicts list keys alike
        self.query_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.value_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.key_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.output_linear = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        # heads sharing a patch size run as one batched attention call
        self.head_groups = {
            p: [i for i, q in enumerate(self.patch_sizes) if q == p]
            for p in dict.fromkeys(self.patch_sizes)
        }

    def forward(self, x):
        height, width = x.shape[-2:]
        query, key, value = self.query_embedding(x), self.key_embedding(x), self.value_embedding(x)
        attend = F.scaled_dot_product_attention if self.attn_impl == 'sdpa' else naive_attention
        outputs = [None] * len(self.patch_sizes)
        for patch, heads in self.head_groups.items():
            q, k, v = (image_to_tokens(self._head_channels(t, heads), len(heads), patch) for t in (query, key, value))
            out = tokens_to_image(attend(q, k, v), patch, height, width)
            for i, head_out in zip(heads, out.chunk(len(heads), dim=1)):
                outputs[i] = head_out
        return self.output_linear(torch.cat(outputs, dim=1))

    def _head_channels(self, x, heads):
        c = self.head_channels
        if len(heads) == len(self.patch_sizes):
            return x
        return torch.cat([x[:, i * c:(i + 1) * c] for i in heads], dim=1)


class FeedForward(nn.Module):
    """Dilated 3x3 conv and 3x3 conv, each followed by LeakyReLU(0.2)."""

    def __init__(self, n_feats):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=2, dilation=2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x):
        return self.conv(x)


class NonLocalBlock(nn.Module):
    """Transformer-style block: x + attention(x), then + feed_forward(.).

    Height and width must be multiples of every patch size.
    """

    def __init__(self, n_feats, patch_sizes, attn_impl='sdpa'):
        super().__init__()
        self.attention = PatchMultiHeadAttention(n_feats, patch_sizes, attn_impl)
        self.feed_forward = FeedForward(n_feats)

    def forward(self, x):
        x = x + self.attention(x)
        return x + self.feed_forward(x)
