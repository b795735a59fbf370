"""Global patch-based multi-head self-attention: the non-local block of CNLRN.

Each head owns a contiguous slice of c = C/heads channels and a patch size p.
It cuts its (c, H, W) map into non-overlapping p x p patches, treats every
patch as one token of dimension c*p*p and attends over all tokens of the
image (global, not windowed). Heads are concatenated back along channels.

Memory and copies, which bound the frame size on CPU:

* the default path calls ``scaled_dot_product_attention``, whose fused
  kernels never hold the N x N score matrix (N = HW/p^2 tokens; 14,400 at a
  REDS frame's 2x stage, 0.83 GB of float32 scores per head).
  ``attn_impl='naive'`` writes that matrix out, one head at a time, as the
  authors' release does; it is kept to compare against;
* bfloat16 on the CPU (``--bf16``) is the exception: there the fused
  kernel reaches 150-180 GFLOP/s where oneDNN's bf16 matrix products reach
  430, so inference runs :func:`blocked_attention`, 256 queries against all
  keys at a time, which measured 1.35-1.8x the fused kernel's rate on an
  AVX512-BF16 CPU while holding one block's scores (256 x N) at a time;
* heads run one after another on large maps, so only one head's Q/K/V
  exist at a time, and together in one kernel call on small maps (up to
  HEAD_BATCH_TOKENS tokens), where one head's work left cores idle. The 1x1
  Q/K/V embeddings are matrix products over the channel vectors of a
  channels-last map, cut into pixel-major tokens (pixel, channel) by one
  copy, band by band at inference, and the output is folded straight into
  the channels-last output map. The release orders a token's features
  (channel, pixel); attention is invariant to that order, so its weights
  give the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnlrn_arch.archs.arch_util import add_residual, exporting, records_graph, run_in_strips

ATTN_IMPLS = ('sdpa', 'naive')
# input rows beyond a strip that the feed-forward reads: dilated 3x3 (2) + 3x3 (1)
FEED_FORWARD_HALO = 3
# queries per block of blocked_attention: the best measured from 900 to 14,400 tokens
QUERY_BLOCK = 256
# values per band of embed_tokens: a band's Q/K/V product (3 MB in float32) stays under the 4 MB from which
# glibc maps every block afresh (cnlrn_arch/runtime/cpu_allocator.py), so bands are recycled from the heap
TOKEN_BAND_VALUES = 3 << 18
# heads of equal patch size attend in one call up to this many tokens each: the fused kernel splits its work
# by head and by 256 queries, and one head of 900 or 3,600 tokens left 2 cores 10-16% idle; their Q/K/V
# (50 MB at most for 4 heads of 64 channels) then exist together
HEAD_BATCH_TOKENS = 4096


def image_to_tokens(image: torch.Tensor, patch: int, parts: int, heads: int = 1) -> torch.Tensor:
    """(B, H, W, parts*heads*c) -> (parts, B, heads, N, patch*patch*c) pixel-major patch tokens, in one copy.

    N = HW/patch^2.

    Args:
        image (torch.Tensor): (B, H, W, parts*heads*c); H and W multiples of ``patch``.
        patch (int): side of the square, non-overlapping patches.
        parts (int): equal channel groups, each tokenized on its own (the query, key and value).
        heads (int): equal channel groups within each part, one per head.
    """
    b, h, w, channels = image.shape
    grid = image.view(b, h // patch, patch, w // patch, patch, parts, heads, channels // (parts * heads))
    return grid.permute(5, 0, 6, 1, 3, 2, 4, 7).reshape(parts, b, heads, (h // patch) * (w // patch), -1)


def embed_tokens(
    pixels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, patch: int, heads: int = 1
) -> torch.Tensor:
    """:func:`image_to_tokens` of ``F.linear(pixels, weight, bias)`` with three parts, computed in bands of rows.

    Only one band's product exists at a time, so at a REDS frame's 2x stage
    the tokens no longer sit beside the whole product (44 MB per head).

    Args:
        pixels (torch.Tensor): (B, H, W, C); H and W multiples of ``patch``.
        weight (torch.Tensor): (3*heads*c, C), the query, key and value embeddings stacked.
        bias (torch.Tensor): (3*heads*c,).
        patch (int): as in :func:`image_to_tokens`.
        heads (int): as in :func:`image_to_tokens`.
    """
    b, h, w, _ = pixels.shape
    c = weight.shape[0] // (3 * heads)
    tokens = pixels.new_empty(3, b, heads, (h // patch) * (w // patch), patch * patch * c)
    # the tokens as a grid laid out like the product: (B, H/patch, patch, W/patch, patch, 3, heads, c)
    grid = tokens.view(3, b, heads, h // patch, w // patch, patch, patch, c).permute(1, 3, 5, 4, 6, 0, 2, 7)
    rows = max(1, TOKEN_BAND_VALUES // (weight.shape[0] * w * patch)) * patch
    for top in range(0, h, rows):
        band = F.linear(pixels[:, top : top + rows], weight, bias)
        grid[:, top // patch : (top + rows) // patch].copy_(band.view(b, -1, patch, w // patch, patch, 3, heads, c))
    return tokens


def fold_tokens_into(image: torch.Tensor, tokens: torch.Tensor, patch: int) -> None:
    """Inverse of :func:`image_to_tokens` for one part, written into ``image``, a (B, H, W, c) view."""
    h, w = image.shape[1:3]
    grid = image.unflatten(1, (h // patch, patch)).unflatten(3, (w // patch, patch))
    grid.copy_(_patch_grid(tokens, image.shape, patch))


def tokens_to_image(tokens: torch.Tensor, shape: Sequence[int], patch: int) -> torch.Tensor:
    """Inverse of :func:`image_to_tokens` for one part, as a new (B, H, W, c) tensor of ``shape``."""
    return _patch_grid(tokens, shape, patch).reshape(shape)


def _patch_grid(tokens: torch.Tensor, shape: Sequence[int], patch: int) -> torch.Tensor:
    """(B, 1, N, patch*patch*c) tokens as a (B, H/patch, patch, W/patch, patch, c) view, for an image of ``shape``."""
    b, h, w, c = shape
    return tokens.view(b, h // patch, w // patch, patch, patch, c).transpose(2, 3)


def naive_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V with the score matrix written out."""
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    return torch.matmul(scores.softmax(dim=-1), value)


def blocked_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V, one head of one image and :data:`QUERY_BLOCK` queries at a time.

    For bfloat16 inference on the CPU (see the module's docstring): the
    scores and probabilities stay bfloat16, as the fused kernel's do, and
    the softmax accumulates in float32 inside the kernel. A block's scores
    are QUERY_BLOCK x N whatever the number of heads, so they stay small
    enough to be recycled from the heap. Under autograd it would keep every
    block for backward, so training runs the fused kernel.
    """
    out = torch.empty_like(query)
    scale = 1 / math.sqrt(query.shape[-1])
    # the leading (batch, head) dimensions as one
    queries, keys, values, outs = (t.flatten(0, -3) for t in (query, key, value, out))
    # autocast would run the softmax, and so the next product's input, in float32
    with torch.autocast(query.device.type, enabled=False):
        for head_query, head_key, head_value, head_out in zip(queries, keys, values, outs):
            key_t = head_key.transpose(-2, -1).contiguous()  # once, not at every block's product
            head_query = head_query * scale  # on N x d values rather than on every N x N score
            for start in range(0, query.shape[-2], QUERY_BLOCK):
                rows = slice(start, start + QUERY_BLOCK)
                probabilities = torch.matmul(head_query[rows], key_t).softmax(dim=-1)
                head_out[rows] = torch.matmul(probabilities, head_value)
    return out


def attention_kernel(attn_impl: str, query: torch.Tensor):
    """The attention function for ``attn_impl`` and a query of ``query``'s dtype, device and autograd state."""
    if attn_impl == 'naive':
        return naive_attention
    if query.dtype == torch.bfloat16 and query.device.type == 'cpu' and not records_graph(query):
        return blocked_attention
    return F.scaled_dot_product_attention


class PatchMultiHeadAttention(nn.Module):
    """Q/K/V 1x1 embeddings, per-head patch attention, 3x3 output projection.

    Args:
        n_feats (int): channels in and out; split evenly across the heads.
        patch_sizes (Sequence[int]): one patch size per head; their count is
            the number of heads.
        attn_impl (str): 'sdpa' (fused ``scaled_dot_product_attention``, which
            never holds the score matrix) or 'naive' (the score matrix written
            out, as released).
    """

    def __init__(self, n_feats: int, patch_sizes: Sequence[int], attn_impl: str = 'sdpa'):
        super().__init__()
        self.patch_sizes = tuple(patch_sizes)
        self.head_channels = n_feats // len(self.patch_sizes)
        self.attn_impl = attn_impl
        # registration order mirrors the release so state dicts list keys alike
        self.query_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.value_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.key_embedding = nn.Conv2d(n_feats, n_feats, 1)
        self.output_linear = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))

    @property
    def embeddings(self) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        return self.query_embedding, self.key_embedding, self.value_embedding

    def head_groups(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(first head, heads, patch size) of each call of the attention kernel for a map of ``height`` x ``width``.

        Heads of one patch size are batched up to HEAD_BATCH_TOKENS tokens each. An
        exported graph, which serves every size, keeps one head per call, and so does
        the naive attention, whose score matrices would otherwise exist for all heads.
        """
        patch = self.patch_sizes[0]
        batched = set(self.patch_sizes) == {patch} and height * width <= HEAD_BATCH_TOKENS * patch**2
        if batched and self.attn_impl != 'naive' and not exporting():
            return [(0, len(self.patch_sizes), patch)]
        return [(head, 1, size) for head, size in enumerate(self.patch_sizes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, channels, height, width = x.shape
        pixels = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view of a channels-last map
        # an exported graph cannot write into views of one output map: it concatenates the heads instead
        exported = exporting()
        recording = records_graph(pixels)
        heads = []
        out = None if exported else x.new_empty(b, height, width, channels)
        for first, count, patch in self.head_groups(height, width):
            group = slice(first * self.head_channels, (first + count) * self.head_channels)
            # the heads' query, key and value embeddings as one product (a wider GEMM) tokenized by one copy
            weight = torch.cat([embedding.weight[group] for embedding in self.embeddings]).flatten(1)
            bias = torch.cat([embedding.bias[group] for embedding in self.embeddings])
            if recording:
                query, key, value = image_to_tokens(F.linear(pixels, weight, bias), patch, parts=3, heads=count)
            else:
                query, key, value = embed_tokens(pixels, weight, bias, patch, heads=count)
            attended = attention_kernel(self.attn_impl, query)(query, key, value)
            del query, key, value
            for head in range(count):
                tokens = attended[:, head : head + 1]
                if exported:
                    heads.append(tokens_to_image(tokens, (b, height, width, self.head_channels), patch))
                else:
                    head_slice = slice((first + head) * self.head_channels, (first + head + 1) * self.head_channels)
                    fold_tokens_into(out[..., head_slice], tokens, patch)
            del attended
        if exported:
            out = torch.cat(heads, dim=-1)
        return self.output_linear(out.permute(0, 3, 1, 2))


class FeedForward(nn.Module):
    """Dilated 3x3 conv and 3x3 conv, each followed by LeakyReLU(0.2).

    Args:
        n_feats (int): channels in and out.
    """

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=2, dilation=2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_in_strips(self.conv, x, FEED_FORWARD_HALO)


class NonLocalBlock(nn.Module):
    """Transformer-style block: x + attention(x), then + feed_forward(.).

    Height and width must be multiples of every patch size.

    Args:
        n_feats (int): channels in and out.
        patch_sizes (Sequence[int]): see :class:`PatchMultiHeadAttention`.
        attn_impl (str): see :class:`PatchMultiHeadAttention`.
    """

    def __init__(self, n_feats: int, patch_sizes: Sequence[int], attn_impl: str = 'sdpa'):
        super().__init__()
        self.attention = PatchMultiHeadAttention(n_feats, patch_sizes, attn_impl)
        self.feed_forward = FeedForward(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = add_residual(self.attention(x), x)
        return add_residual(self.feed_forward(x), x)
