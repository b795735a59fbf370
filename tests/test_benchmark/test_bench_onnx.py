"""``cnlrn bench --onnxruntime``: onnxruntime and PyTorch timed in turns on a tiny network, and its report section."""

import json

import pytest

from cnlrn_cli.main import main
from cnlrn_tools.speed import operator_profile
from tests.helpers import TINY_CNLRN_ARGS, exit_status


def test_onnxruntime_comparison_writes_its_section(tmp_path, capsys, monkeypatch):
    sizes = ['--sizes', '10x13', '8x8']
    args = ['--config', json.dumps(TINY_CNLRN_ARGS), *sizes, '--runs', '2', '--threads', '1', '--out', str(tmp_path)]
    workdir = tmp_path / 'workdir'
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert exit_status(main, ['bench', '--onnxruntime', *args]) == 0
    assert not list(workdir.iterdir())  # onnxruntime's profile trace went to a folder of the bench's own
    comparison = json.loads((tmp_path / 'onnxruntime.json').read_text())
    assert list(comparison['sizes']) == ['10x13', '8x8']
    measured = comparison['sizes']['10x13']
    assert measured['output_shape'] == [1, 3, 40, 52]
    assert all(len(times) == 2 and min(times) > 0 for times in measured['times_s'].values())
    assert measured['max_abs_difference'] <= 1e-4
    assert measured['floor_s'] == pytest.approx(measured['flops'] / (comparison['peak']['gflops'] * 1e9))
    report = (tmp_path / 'RESULTS.md').read_text()
    ratio = measured['median_s']['torch'] / measured['median_s']['onnxruntime']
    assert set(measured['times_s']) == {'torch', 'torch_nchw', 'onnxruntime'}
    assert measured['max_abs_difference_to_before'] <= 1e-5
    assert f'| 10x13 | PyTorch {comparison["torch"]}, channels-last (default) | 2 |' in report
    assert f'| 10x13 | PyTorch {comparison["torch"]}, NCHW weights (before) | 2 |' in report
    assert f'| {ratio:.2f} |' in report
    assert f'| 8x8 | onnxruntime {comparison["onnxruntime"]} | 2 |' in report
    assert len(measured['turn_ratios']) == 2 and 'turn by turn' in report
    # the profiles of both runtimes, at the largest size, in the same kinds of work
    profile = comparison['profile']
    assert profile['size'] == [10, 13]
    assert set(profile['torch']['kinds']) == set(profile['onnxruntime']['kinds']) == set(operator_profile.KINDS)
    assert profile['torch']['kinds']['convolutions'] > 0 and profile['onnxruntime']['kinds']['convolutions'] > 0
    assert dict(profile['onnxruntime']['top'])['Conv'] > 0 and 'aten::mkldnn_convolution' in dict(
        profile['torch']['top']
    )
    assert set(profile['flops']) == set(operator_profile.KINDS[:2]) and min(profile['flops'].values()) > 0
    assert '| convolutions |' in report and 'onnxruntime GFLOP/s' in report


def test_onnxruntime_comparison_is_on_the_cpu(tmp_path, capsys):
    assert exit_status(main, ['bench', '--onnxruntime', '--device', 'cuda', '--out', str(tmp_path)]) == 2
    assert '--onnxruntime compares on the CPU' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
