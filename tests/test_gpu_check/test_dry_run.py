"""``cnlrn gpu-check --dry-run``: every step of the GPU acceptance check runs on the CPU, as CI runs it.

It keeps the GPU run's code working between GPU windows; the CUDA-only steps report themselves skipped.
"""

import json

import pytest

from cnlrn_tools.gpu_check.steps import MIN_PSNR
from tests.helpers import run_command

pytestmark = pytest.mark.slow

CUDA_ONLY = {'fixture_tf32', 'test_gpu_vs_cpu'}


def test_the_dry_run_passes_on_the_cpu(tmp_path):
    out = tmp_path / 'gpu_check'
    result = run_command('cnlrn', 'gpu-check', '--dry-run', '--out', out, cwd=tmp_path)
    report = json.loads((out / 'gpu_check.json').read_text())
    statuses = {step['name']: step['status'] for step in report['steps']}
    assert result.returncode == 0, result.stdout[-3000:] + (out / 'gpu_check.md').read_text()[:6000]
    assert report['verdict'] == 'PASS' and report['mode'] == 'dry run'
    assert {name for name, status in statuses.items() if status != 'pass'} == CUDA_ONLY
    assert all(s['reason'] == 'no CUDA' for s in report['steps'] if s['name'] in CUDA_ONLY)
    steps = {step['name']: step for step in report['steps']}
    # each step left its figures: the dry run reads what the GPU run will read
    assert steps['fixture']['figures']['sdpa fp32 max |diff| to stored'] <= 1e-4
    assert 'default picks' in steps['sdpa_backends']['figures']
    assert steps['fp16_scaler']['figures']['loss scale after resuming'] <= 1024
    assert steps['deterministic']['figures']['tensors_differing'] == 0
    assert steps['infer']['figures']['tile: PSNR vs plain fp32 (dB)'] >= MIN_PSNR['tile']
    assert any('x floor' in str(v) for v in steps['bench']['figures'].values())
    schedule = steps['train_speed']['figures']['paper schedule on one GPU (600k pretrain + 1M joint iterations)']
    assert set(schedule) == {'fp32', 'bf16'}
    assert steps['loader']['figures']['samples/s'] > 0
    markdown = (out / 'gpu_check.md').read_text()
    assert '# GPU acceptance check' in markdown and '## fixture_tf32: skipped' in markdown
    print(f'dry run: {report["wall_s"]} s wall', '\n'.join(markdown.splitlines()[6:30]), sep='\n')
