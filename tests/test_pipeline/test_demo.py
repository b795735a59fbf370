"""The shortened demo (``cnlrn demo --quick``) so the main job cannot silently break."""

import cv2
import pytest

from tests.helpers import run_command


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path):
    result = run_command('cnlrn', 'demo', '--quick', cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ('$ cnlrn make-demo-data', '$ basicsr train -opt', 'pretrain.yml', 'joint.yml', '$ basicsr test -opt'):
        assert step in out
    assert '| bicubic upsampling of the blurry LR | 23.' in out
    assert '| CNLRN, trained just now (options/demo) |' in out
    table = (tmp_path / 'results/demo/table.md').read_text()
    assert '| method | PSNR (dB) | SSIM | vs bicubic |' in table
    picture = cv2.imread(str(tmp_path / 'results/demo/comparison.png'))
    curve = cv2.imread(str(tmp_path / 'results/demo/psnr_curve.png'))
    assert picture is not None and curve is not None
    # three held-out photos, one row each; the panels are 256 px tiles plus zoomed details
    assert picture.shape[0] > 3 * 256 and picture.shape[1] > 3 * 256
    assert (tmp_path / 'tb_logger/CNLRN_demo_joint').is_dir()
