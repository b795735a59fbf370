"""``cnlrn bench --onnxruntime``: onnxruntime and PyTorch timed in turns on a tiny network, and its report section."""

import json

from cnlrn_cli.main import main
from tests.helpers import TINY_CNLRN_ARGS, exit_status


def test_onnxruntime_comparison_writes_its_section(tmp_path, capsys):
    args = ['--config', json.dumps(TINY_CNLRN_ARGS), '--sizes', '10x13', '--runs', '2', '--out', str(tmp_path)]
    assert exit_status(main, ['bench', '--onnxruntime', *args]) == 0
    comparison = json.loads((tmp_path / 'onnxruntime.json').read_text())
    assert comparison['output_shape'] == [1, 3, 40, 52]
    assert all(len(times) == 2 and min(times) > 0 for times in comparison['times_s'].values())
    assert comparison['max_abs_difference'] <= 1e-4
    report = (tmp_path / 'RESULTS.md').read_text()
    ratio = comparison['median_s']['onnxruntime'] / comparison['median_s']['torch']
    assert f'| onnxruntime {comparison["onnxruntime"]} | 2 |' in report and f'| {ratio:.2f} |' in report
    assert len(comparison['turn_ratios']) == 2 and 'turn by turn' in report


def test_onnxruntime_comparison_is_on_the_cpu(tmp_path, capsys):
    assert exit_status(main, ['bench', '--onnxruntime', '--device', 'cuda', '--out', str(tmp_path)]) == 2
    assert '--onnxruntime compares on the CPU' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
