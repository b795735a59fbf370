"""``cnlrn bench-quality``: a real run on tiny data, the parameter matching, the missing-data error."""

import json
import math

import cv2
import pytest

from cnlrn_arch.benchmark.quality.variants import (
    BY_NAME,
    VARIANTS,
    count_parameters,
    match_parameters,
    reference_network,
    scaled_network,
)
from cnlrn_cli.main import main
from tests.helpers import run_command


def test_scaled_variants_match_the_demo_cnlrn():
    target = count_parameters(reference_network())
    for variant in VARIANTS:
        params = count_parameters(scaled_network(variant))
        if variant.name == 'no_deblur':  # the ablation removes most of the parameters by design
            assert params < target / 5
        else:
            assert abs(params - target) / target < 0.05, (variant.name, params, target)


def test_match_parameters_picks_the_closest_block_count():
    rcan = dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=1, upscale=4)
    counts = {b: count_parameters(dict(rcan, num_block=b)) for b in (3, 4, 5)}
    just_over_4 = counts[4] + (counts[5] - counts[4]) // 3
    assert match_parameters(rcan, ('num_block',), just_over_4)['num_block'] == 4
    assert match_parameters(rcan, ('num_block',), counts[4] - 1)['num_block'] == 4
    assert 'num_block' not in rcan  # the given network is left as it was


def test_missing_data_is_one_line(tmp_path, capsys):
    assert main(['bench-quality', '--data', str(tmp_path / 'nowhere')]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f'cnlrn bench-quality: error: no demo data in {tmp_path}/nowhere (missing train_sharp.lmdb): '
        f'run `cnlrn make-demo-data --out {tmp_path}/nowhere` first'
    ]


@pytest.mark.slow
def test_tiny_run_writes_table_chart_and_numbers(tmp_path):
    assert (
        run_command('cnlrn', 'make-demo-data', '--out', 'data', '--crops-per-photo', '1', cwd=tmp_path).returncode == 0
    )
    result = run_command(
        'cnlrn',
        'bench-quality',
        '--iters',
        '2',
        '--data',
        'data',
        '--out',
        'out',
        '--variants',
        'cnlrn',
        'no_deblur',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '[2/2] CNLRN without deblurring module:' in result.stdout
    out = tmp_path / 'out'
    numbers = json.loads((out / 'quality.json').read_text())
    assert [row['name'] for row in numbers['rows']] == ['cnlrn', 'no_deblur']
    assert [row['pretrain_iters'] for row in numbers['rows']] == [1, 0]
    for row in numbers['rows']:
        for key in ('psnr', 'ssim', 'train_s', 'infer_s'):
            assert math.isfinite(row[key]) and row[key] > 0, (row['name'], key)
    assert numbers['rows'][0]['params'] == count_parameters(scaled_network(BY_NAME['cnlrn']))
    md = (out / 'QUALITY.md').read_text()
    assert 'cnlrn bench-quality --iters 2 --data data --out out --variants cnlrn no_deblur' in md
    assert '| CNLRN | `options/joint.yml` | 3.90 M |' in md and '27.770 / 0.7784' in md
    assert '- held' in md or '- did not hold' in md
    assert cv2.imread(str(out / 'quality.png')) is not None

    (out / 'QUALITY.md').unlink()
    assert run_command('cnlrn', 'bench-quality', '--out', 'out', '--report-only', cwd=tmp_path).returncode == 0
    assert (out / 'QUALITY.md').read_text() == md


@pytest.mark.parametrize('args', [['--iters', '1'], ['--variants', 'nope']])
def test_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['bench-quality', *args])
    assert exit_info.value.code == 2 and 'bench-quality: error:' in capsys.readouterr().err
