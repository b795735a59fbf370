"""Unit tests of the networks: released keys, released outputs, sizes, errors."""

import os

import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

import cnlrn_arch  # noqa: F401  registers the networks
from cnlrn_arch.archs import arch_util, nonlocal_attention
from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.archs.nonlocal_attention import PatchMultiHeadAttention
from tests.helpers import DATA_DIR, TINY_CNLRN_ARGS


def reference_keys(name):
    with open(os.path.join(DATA_DIR, name), encoding='utf-8') as f:
        rows = f.read().splitlines()[1:]
    return [tuple(row.split('\t')) for row in rows]


def key_shapes(net):
    return [(k, 'x'.join(str(d) for d in v.shape)) for k, v in net.state_dict().items()]


@pytest.mark.parametrize(
    'arch, tsv', [('CNLRN', 'cnlrn_default_keys.tsv'), ('CNLRNPreDeblur', 'predeblur_default_keys.tsv')]
)
def test_default_keys_match_release(arch, tsv):
    net = ARCH_REGISTRY.get(arch)()
    assert key_shapes(net) == reference_keys(tsv)


def test_default_parameter_count():
    net = CNLRN()
    assert sum(p.numel() for p in net.parameters()) == 83_063_491
    assert sum(p.numel() for p in net.DeblurNet.parameters()) == 73_090_624


@pytest.fixture(scope='module')
def fixture():
    return torch.load(os.path.join(DATA_DIR, 'cnlrn_small_fixture.pt'), weights_only=True)


@pytest.mark.parametrize('attn_impl', ['sdpa', 'naive'])
def test_small_fixture_reproduces_release(fixture, attn_impl):
    net = CNLRN(**fixture['config'], attn_impl=attn_impl).eval()
    net.load_state_dict(fixture['state_dict'], strict=True)
    with torch.inference_mode():
        out = net(fixture['input'])
    assert out.shape == fixture['output'].shape
    assert (out - fixture['output']).abs().max().item() < 1e-5


def test_the_small_fixture_in_nhwc_order_reproduces_the_release(fixture):
    """The CPU runs the network channels-last (cnlrn_arch.runtime.speed.channels_last_on): same outputs."""
    net = CNLRN(**fixture['config']).eval().to(memory_format=torch.channels_last)
    net.load_state_dict(fixture['state_dict'], strict=True)
    with torch.inference_mode():
        out = net(fixture['input'].contiguous(memory_format=torch.channels_last))
    assert (out - fixture['output']).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    'size, expected',
    [((1, 3, 17, 23), (1, 3, 68, 92)), ((2, 3, 5, 3), (2, 3, 20, 12)), ((1, 3, 16, 24), (1, 3, 64, 96))],
)
def test_any_input_size(size, expected):
    net = CNLRN(**TINY_CNLRN_ARGS).eval()
    with torch.inference_mode():
        assert tuple(net(torch.rand(size)).shape) == expected


@pytest.mark.parametrize('size', [(15, 21), (13, 6), (16, 23)])
def test_other_sizes_are_reflect_padded_and_cropped_top_left(fixture, size):
    """Values, not shapes: the output is the padded input's, reflected at the bottom and right, cut from the top left.

    With the fixture network, zero padding instead moves outputs by 0.07-0.11, cropping from the bottom
    right by 0.16-0.18.
    """
    net = CNLRN(**fixture['config']).eval()
    net.load_state_dict(fixture['state_dict'])
    height, width = size
    x = fixture['input'][:1, :, :height, :width]
    padded = F.pad(x, (0, -width % 4, 0, -height % 4), mode='reflect')
    with torch.inference_mode():
        out = net(x)
        reference = net(padded)[..., : 4 * height, : 4 * width]
    assert out.shape == (1, 3, 4 * height, 4 * width)
    assert (out - reference).abs().max().item() < 1e-5


def test_multiple_of_four_is_not_padded(fixture):
    """Multiples of 4 reach the deblurring module as they are; others are padded."""
    net = CNLRN(**fixture['config']).eval()
    net.load_state_dict(fixture['state_dict'])
    calls = []
    net.DeblurNet.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    with torch.inference_mode():
        net(fixture['input'])
        net(torch.rand(1, 3, 17, 23))
    assert calls == [(2, 3, 16, 24), (1, 3, 20, 24)]


def test_predeblur_keeps_size():
    net = CNLRNPreDeblur(n_feats=8, n_deblur_blocks=1).eval()
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 10, 13)).shape == (1, 3, 10, 13)


def test_sdpa_and_naive_attention_agree():
    torch.manual_seed(0)
    config = dict(TINY_CNLRN_ARGS, nonlocal_psize=(2, 4, 2, 4))
    sdpa = CNLRN(**config, attn_impl='sdpa').eval()
    naive = CNLRN(**config, attn_impl='naive').eval()
    naive.load_state_dict(sdpa.state_dict())
    x = torch.rand(2, 3, 16, 24)
    with torch.inference_mode():
        assert (sdpa(x) - naive(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize('upsampling', ['progressive', 'post'])
def test_inference_strips_and_in_place_residuals_match_autograd_path(monkeypatch, upsampling):
    """Inference runs local layers in strips and adds residuals in place; same output."""
    # one row per strip, and strips at every size: every strip edge is exercised
    monkeypatch.setattr(arch_util, 'STRIP_PIXELS', 1)
    monkeypatch.setattr(arch_util, 'MIN_STRIPPED_PIXELS', 1)
    torch.manual_seed(0)
    net = CNLRN(**dict(TINY_CNLRN_ARGS, nonlocal_psize=(2, 4, 2, 4)), upsampling=upsampling).eval()
    x = torch.rand(2, 3, 16, 12)
    with torch.inference_mode():
        inferred = net(x)
    reference = net(x.requires_grad_())
    assert inferred.shape == reference.shape == (2, 3, 64, 48)
    # float32 tolerance: strips may pick other convolution kernels than the full map
    assert (inferred - reference).abs().max().item() < 1e-5


def test_mixed_patch_sizes_pad_to_common_multiple():
    net = CNLRN(**dict(TINY_CNLRN_ARGS, nonlocal_psize=(8, 8, 2, 2))).eval()
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 12, 20)).shape == (1, 3, 48, 80)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(n_feats=30), 'divisible by the number of attention heads'),
        (dict(scale=2), 'x4 only'),
        (dict(n_feats=8, nonlocal_psize=(4, 4)), 'at least 16'),
        (dict(n_rcabs=0), 'n_rcabs must be a positive integer'),
        (dict(nonlocal_psize=()), 'at least one patch size'),
        (dict(nonlocal_psize=(4, 0, 4, 4)), r'nonlocal_psize\[1\]'),
        (dict(attn_impl='flash'), 'attn_impl must be one of'),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CNLRN(**kwargs)


@pytest.mark.parametrize('attn_impl', ['sdpa', 'naive'])
def test_attention_gradients(attn_impl):
    """Heads write into slices of one output map; autograd must see through those writes."""
    torch.manual_seed(0)
    attention = PatchMultiHeadAttention(8, (2, 4), attn_impl).double()
    x = torch.rand(1, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attention, (x,))


@pytest.mark.parametrize('heads', [1, 4])
def test_embedding_in_bands_equals_one_product_cut_into_tokens(monkeypatch, heads):
    """Bands of one patch row (and a last, partial band) give the tokens of the whole product."""
    monkeypatch.setattr(nonlocal_attention, 'TOKEN_BAND_VALUES', 1)
    torch.manual_seed(0)
    pixels = torch.randn(2, 12, 8, 16, dtype=torch.float64)
    weight, bias = torch.randn(3 * heads * 3, 16, dtype=torch.float64), torch.randn(3 * heads * 3, dtype=torch.float64)
    whole = nonlocal_attention.image_to_tokens(F.linear(pixels, weight, bias), 2, parts=3, heads=heads)
    banded = nonlocal_attention.embed_tokens(pixels, weight, bias, 2, heads=heads)
    assert banded.shape == whole.shape == (3, 2, heads, 24, 2 * 2 * 3)
    assert torch.allclose(banded, whole, atol=1e-12)  # the same products; a GEMM may order its sums by size


def test_heads_of_one_patch_size_attend_together_on_small_maps_only(monkeypatch):
    attention = PatchMultiHeadAttention(16, (2, 2, 2, 2))
    assert attention.head_groups(8, 12) == [(0, 4, 2)]
    width_at_limit = nonlocal_attention.HEAD_BATCH_TOKENS * 2  # one row of 2x2 patches
    assert attention.head_groups(2, width_at_limit) == [(0, 4, 2)]
    assert attention.head_groups(2, width_at_limit + 2) == [(0, 1, 2), (1, 1, 2), (2, 1, 2), (3, 1, 2)]
    assert PatchMultiHeadAttention(16, (2, 4)).head_groups(8, 12) == [(0, 1, 2), (1, 1, 4)]
    assert PatchMultiHeadAttention(16, (2, 2), 'naive').head_groups(8, 12) == [(0, 1, 2), (1, 1, 2)]
    # an exported graph serves every size: one head per call, whatever the size it was traced at
    monkeypatch.setattr(nonlocal_attention, 'exporting', lambda: True)
    assert attention.head_groups(8, 12) == [(0, 1, 2), (1, 1, 2), (2, 1, 2), (3, 1, 2)]


@pytest.mark.parametrize('grad', [False, True])
def test_heads_attending_together_give_what_they_give_one_at_a_time(monkeypatch, grad):
    torch.manual_seed(0)
    attention = PatchMultiHeadAttention(16, (2, 2, 2, 2)).double()
    x = torch.rand(2, 16, 8, 12, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.set_grad_enabled(grad):
        together = attention(x.requires_grad_(grad))
        monkeypatch.setattr(nonlocal_attention, 'HEAD_BATCH_TOKENS', 0)
        one_at_a_time = attention(x)
    assert torch.allclose(together, one_at_a_time, atol=1e-12)
    if grad:
        monkeypatch.undo()
        assert torch.autograd.gradcheck(attention, (x[:1, :, :4, :4].detach().requires_grad_(),))


@pytest.mark.parametrize('tokens', [1, 255, 256, 600])
def test_blocked_attention_matches_the_fused_kernel(tokens):
    """Exact in float64 for token counts around the block size (256); within bf16 rounding in bf16, under autocast."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 1, tokens, 32, dtype=torch.float64)
    fused = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(nonlocal_attention.blocked_attention(q, k, v), fused, atol=1e-12)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        blocked = nonlocal_attention.blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert blocked.dtype == torch.bfloat16
    assert (blocked.double() - fused).abs().max().item() < 0.03


def test_bf16_cpu_inference_takes_the_blocked_kernel_and_everything_else_the_fused_one():
    bf16 = torch.zeros(1, 1, 4, 8, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert nonlocal_attention.attention_kernel('sdpa', bf16) is nonlocal_attention.blocked_attention
        assert nonlocal_attention.attention_kernel('sdpa', bf16.float()) is F.scaled_dot_product_attention
        assert nonlocal_attention.attention_kernel('naive', bf16) is nonlocal_attention.naive_attention
    # training keeps the fused kernel, whose backward holds no score matrix
    assert nonlocal_attention.attention_kernel('sdpa', bf16.requires_grad_()) is F.scaled_dot_product_attention


def test_bf16_network_output_stays_close_to_float32():
    """The whole tiny network under bf16 autocast, blocked attention included, against float32."""
    torch.manual_seed(0)
    net = CNLRN(**TINY_CNLRN_ARGS).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        float32 = net(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = net(x).float()
    assert (bf16 - float32).abs().mean().item() < 0.01
