"""``cnlrn bench``: FLOP counting and a real run of the harness on a tiny network."""

import json
import os

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_cli.main import main
from cnlrn_tools.hardware.flops import count_flops, cross_check, training_flops
from tests.helpers import TINY_CNLRN_ARGS, exit_status, run_command

TINY = dict(TINY_CNLRN_ARGS, nonlocal_psize=[2, 4, 2, 4])


def test_attention_formula_matches_explicit_matmuls():
    """The formula stands in for the fused kernel; the naive path's matmuls must count the same."""
    flops = count_flops(TINY, (16, 24), batch=2)
    with torch.device('meta'):
        naive = CNLRN(**TINY, attn_impl='naive')
        x = torch.empty(2, 3, 16, 24, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        naive(x)
    counts = counter.get_flop_counts()['Global']
    assert counts[torch.ops.aten.bmm] == flops['attention'] > 0
    assert counter.get_total_flops() == flops['total']


def test_the_cross_check_puts_the_formula_beside_the_counter():
    check = cross_check(TINY, (16, 24))
    assert check['FlopCounterMode: bmm'] == pytest.approx(check['this count: attention (formula)'])
    assert check['FlopCounterMode: total'] == pytest.approx(check['this count: total'])


def test_a_training_step_counts_forward_and_backward():
    """Backward costs twice the forward, but for the input gradient of the first layer, which training skips."""
    with torch.device('meta'):
        net = CNLRN(**TINY)
    step = training_flops(net, (2, 3, 16, 24))
    forward = count_flops(TINY, (16, 24), batch=2)['total']
    first_conv = 2 * 2 * 16 * 24 * 3 * TINY['n_feats'] * 25  # 5x5 from RGB: its input gradient is not computed
    assert step == 3 * forward - first_conv


def test_released_configuration_flops():
    """A REDS frame costs about 6.9 TFLOPs, more than half of it attention (issue 6)."""
    flops = count_flops({}, (180, 320))
    assert 6.8e12 < flops['total'] < 7.0e12
    assert flops['attention'] > flops['conv']


@pytest.mark.slow
def test_bench_writes_results(tmp_path):
    out = tmp_path / 'bench'
    sizes = ['--sizes', '8x12', '--train-size', '8x8', '--train-batch', '1', '--runs', '2', '--matmul-size', '512']
    config = ['--config', json.dumps(TINY), '--out', out, '--threads', '1']
    # about 30 s on 2 idle cores, 90 s on busy ones: a hung bench fails the test within the suite's few minutes
    result = run_command('cnlrn', 'bench', *sizes, *config, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    run = json.loads((out / 'results_cpu.json').read_text())
    cases = run['cases']
    kinds = {(c['kind'], c['impl'], c['precision']) for c in cases}
    assert kinds >= {
        ('inference', 'sdpa', 'fp32'),
        ('inference', 'naive', 'fp32'),
        ('training', 'sdpa', 'fp32'),
        ('training', 'naive', 'fp32'),
    }
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert {('inference', 'sdpa', 'bf16'), ('training', 'sdpa', 'bf16')} <= kinds
    for case in cases:
        assert 'error' not in case, case
        assert case['median_s'] > 0 and len(case['times_s']) == 2
    inference = [c for c in cases if c['kind'] == 'inference']
    assert all(c['output_shape'] == [1, 3, 32, 48] for c in inference)
    assert sum('profile' in c for c in cases) == 1 and 'mkldnn_convolution' in cases[0]['profile']
    libraries = {row['library'] for row in run['gemm_peaks']}
    assert libraries == {'torch', 'torch oneDNN', 'onnxruntime', 'numpy', 'torch conv'}
    assert run['peak_set_by']['fp32']['gflops'] == max(
        r['gflops'] for r in run['gemm_peaks'] if r['precision'] == 'fp32'
    )
    report = (out / 'RESULTS.md').read_text()
    assert '| 8x12 | 32x48 | sdpa | fp32 | 2 |' in report and 'x floor' in report
    assert 'set by' in report and 'FlopCounterMode: bmm' in report
    assert (out / 'speed.png').stat().st_size > 0


@pytest.mark.parametrize(
    'args, message',
    [
        (['--sizes', '180by320'], "--sizes: '180by320' is not HEIGHTxWIDTH"),
        (['--config', '{"n_feats": '], '--config: not JSON'),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    assert exit_status(main, ['bench', *args, '--out', str(tmp_path)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and 'Traceback' not in stderr
    assert not os.path.exists(tmp_path / 'RESULTS.md')
