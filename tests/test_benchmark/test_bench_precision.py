"""``cnlrn bench`` measures each case against the peak of its own precision, and reads the GPU as it is.

The GPU's side is shown on the CPU: torch's CUDA queries are stood in for by monkeypatch.
"""

import pytest
import torch
from torch.autograd.profiler_util import FunctionEventAvg

from cnlrn_arch.runtime import speed
from cnlrn_cli.main import main
from cnlrn_tools.hardware import gemm_peak
from cnlrn_tools.hardware.flops import floor_of
from cnlrn_tools.speed import case as case_module
from cnlrn_tools.speed import speed_bench as run
from tests.helpers import TINY_CNLRN_ARGS, assert_one_line_error, exit_status


@pytest.fixture
def restore_flags():
    """The process-wide flags a case or a peak sets, restored after the test."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before


def gpu_plan(monkeypatch, tf32):
    monkeypatch.setattr(run, 'naive_too_big', lambda config, size, device: None)
    monkeypatch.setattr(run, 'bf16_native', lambda device: True)
    return run.plan({}, [(180, 320)], 3, (64, 64), 2, True, 'cuda', None, tf32)


def test_a_tf32_case_gets_its_own_matmul_peak(monkeypatch):
    cases = gpu_plan(monkeypatch, tf32=True)
    kinds = {(c['kind'], c['impl'], c['precision']) for c in cases}
    assert {('inference', 'sdpa', 'tf32'), ('inference', 'naive', 'tf32'), ('training', 'sdpa', 'tf32')} <= kinds
    assert {('inference', 'sdpa', 'bf16'), ('inference', 'naive', 'bf16'), ('training', 'sdpa', 'bf16')} <= kinds
    assert run.peak_precisions(cases) == ['fp32', 'tf32', 'bf16']
    without = gpu_plan(monkeypatch, tf32=False)
    assert run.peak_precisions(without) == ['fp32', 'bf16']
    assert not any(c['precision'] == 'tf32' for c in without)


def test_the_floor_is_the_flops_at_the_peak_of_the_case_precision():
    results = {'peak_gflops': {'fp32': 50_000.0, 'tf32': 400_000.0}}
    assert floor_of({'flops': 1e12, 'precision': 'fp32'}, results) == pytest.approx(0.02)
    assert floor_of({'flops': 1e12, 'precision': 'tf32'}, results) == pytest.approx(0.0025)


@pytest.mark.parametrize(
    'precision, tf32, dtype',
    [('fp32', False, torch.float32), ('tf32', True, torch.float32), ('bf16', False, torch.bfloat16)],
)
def test_the_gemm_peak_is_measured_in_the_precision_asked(monkeypatch, restore_flags, precision, tf32, dtype):
    seen = []
    real_matmul = torch.matmul

    def matmul(a, b):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, a.dtype))
        return real_matmul(a, b)

    monkeypatch.setattr(torch, 'matmul', matmul)
    # what is measured is the precision, not the peak: short warm-up and bursts
    monkeypatch.setattr(gemm_peak, 'WARMUP_S', 0.01)
    monkeypatch.setattr(gemm_peak, 'BURST_S', 0.01)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
    rows = gemm_peak.measure_peaks([precision], 'cpu', {'square': (64, 64, 64)})
    # float32 is always measured beside: a lower precision's case may compute in it
    assert {r['precision'] for r in rows} == {'fp32', precision}
    assert all(r['gflops'] > 0 for r in rows)
    ours = [s for s in seen if s[2] == dtype and s[:2] == (tf32, tf32)]
    # warmed up (at least two products), then several bursts, with the precision's flags set
    assert len(ours) >= 5
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (not tf32, not tf32)


def test_every_library_here_is_measured_and_the_best_sets_the_peak(monkeypatch):
    monkeypatch.setattr(gemm_peak, 'WARMUP_S', 0.01)
    monkeypatch.setattr(gemm_peak, 'BURST_S', 0.01)
    shapes = gemm_peak.gemm_shapes(TINY_CNLRN_ARGS, (16, 16), square=64)
    # the network's own GEMMs: tokens of 4x4 patches, head dimension 4 channels x 16 pixels
    assert shapes['attention Q K^T'] == (16, 64, 16) and shapes['attention P V'] == (16, 16, 64)
    conv = gemm_peak.conv_geometry(TINY_CNLRN_ARGS, (16, 16))
    assert conv == (16, 16, 16)
    rows = gemm_peak.measure_peaks(['fp32'], 'cpu', shapes, conv=conv)
    # onnxruntime is installed by the tests' extras
    assert {r['library'] for r in rows} == {*gemm_peak.LIBRARIES, 'torch conv'}
    assert {r['shape'] for r in rows} == {*shapes, '3x3 convolution 16x16x16'}
    assert next(r for r in rows if r['library'] == 'torch conv')['mnk'] == [256, 144, 16]
    best = max(rows, key=lambda r: r['gflops'])
    assert gemm_peak.peak_of(rows, 'fp32') == best and gemm_peak.peaks(rows, ['fp32']) == {'fp32': best['gflops']}


def test_a_lower_precision_is_never_held_below_the_float32_peak():
    rows = [
        dict(library='torch', shape='square', mnk=[8, 8, 8], precision='fp32', gflops=200.0),
        dict(library='torch', shape='square', mnk=[8, 8, 8], precision='bf16', gflops=20.0),  # emulated bf16
        dict(library='numpy', shape='square', mnk=[8, 8, 8], precision='fp32', gflops=250.0),
    ]
    assert gemm_peak.peaks(rows, ['fp32', 'bf16']) == {'fp32': 250.0, 'bf16': 250.0}
    assert gemm_peak.peak_of(rows, 'bf16')['library'] == 'numpy'


def test_peaks_measured_twice_keep_each_gemm_s_best_rate():
    def rows(*rates):
        return [dict(library='torch', shape=shape, precision='fp32', gflops=r) for shape, r in zip('ab', rates)]

    best = gemm_peak.best_of(rows(100.0, 250.0), rows(180.0, 120.0))
    assert [r['gflops'] for r in best] == [180.0, 250.0]
    assert gemm_peak.peak_of(best, 'fp32')['shape'] == 'b'


@pytest.mark.parametrize('capability, native', [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bf16_counts_as_native_from_compute_capability_8(monkeypatch, capability, native):
    # is_bf16_supported() also says yes where bf16 is emulated: it must not decide
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    assert speed.bf16_native('cuda') is native


def test_the_profile_sorts_by_device_time_on_cuda():
    assert case_module.profile_sort_key('cpu') == 'self_cpu_time_total'
    key = case_module.profile_sort_key('cuda')
    assert key == 'self_device_time_total' and hasattr(FunctionEventAvg(), key)
    # the table accepts the key (device times are zero in a CPU profile)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        torch.ones(8, 8) @ torch.ones(8, 8)
    assert 'aten::' in profiler.key_averages().table(sort_by=key, row_limit=3)


def test_a_case_benchmarks_cudnn_and_sets_tf32_as_its_precision_says(restore_flags):
    case = dict(
        config=TINY_CNLRN_ARGS, impl='sdpa', size=(8, 12), batch=1, runs=1, kind='inference', device='cpu', threads=1
    )
    torch.backends.cudnn.benchmark = False
    result = case_module.run_case(dict(case, precision='tf32'))
    assert result['output_shape'] == [1, 3, 32, 48]
    assert torch.backends.cudnn.benchmark  # as basicsr train sets it
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    case_module.run_case(dict(case, precision='fp32'))
    assert not (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def test_tf32_needs_cuda(tmp_path, capsys):
    assert exit_status(main, ['bench', '--tf32', '--out', str(tmp_path)]) == 2
    assert_one_line_error(capsys.readouterr().err, '--tf32 needs --device cuda')
