"""The shortened demo (``cnlrn demo --quick``) so the main job cannot silently break."""

import cv2
import pytest

from cnlrn_arch import demo
from tests.helpers import run_command

BICUBIC = 'bicubic upsampling of the blurry LR'
TRAINED_NOW = 'CNLRN, trained just now (options/demo)'
SHIPPED = 'CNLRN, shipped demo checkpoint'


def table_scores(table):
    """method -> (PSNR, SSIM, 'vs bicubic' cell) of the rows of the demo's Markdown table."""
    rows = [[cell.strip() for cell in line.strip().strip('|').split('|')] for line in table.splitlines()]
    return {
        method: (float(psnr), float(ssim), gain)
        for method, psnr, ssim, gain in (row for row in rows if len(row) == 4)
        if method != 'method' and not method.startswith('-')
    }


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path):
    result = run_command('cnlrn', 'demo', '--quick', cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert 'torch threads: 1 (OMP_NUM_THREADS is set)' in out  # tests.helpers runs commands with one thread
    assert out.count('estimated demo time: ') == 2  # once per training stage
    for step in ('$ cnlrn make-demo-data', '$ basicsr train -opt', 'pretrain.yml', 'joint.yml', '$ basicsr test -opt'):
        assert step in out
    assert f'| {BICUBIC} | 23.' in out
    assert f'| {TRAINED_NOW} |' in out
    table = (tmp_path / 'results/demo/table.md').read_text()
    assert '| method | PSNR (dB) | SSIM | vs bicubic |' in table
    scores = table_scores(table)
    assert set(scores) == {BICUBIC, TRAINED_NOW, SHIPPED}
    # 4 iterations train too little to beat bicubic; the shipped checkpoint must, by PSNR and SSIM
    (bicubic_psnr, bicubic_ssim, _), (psnr, ssim, gain) = scores[BICUBIC], scores[SHIPPED]
    assert psnr > bicubic_psnr and ssim > bicubic_ssim and gain.startswith('+'), table
    assert f'| {SHIPPED} | {psnr:.2f} |' in out
    picture = cv2.imread(str(tmp_path / 'results/demo/comparison.png'))
    curve = cv2.imread(str(tmp_path / 'results/demo/psnr_curve.png'))
    assert picture is not None and curve is not None
    # three held-out photos, one row each; the panels are 256 px tiles plus zoomed details
    assert picture.shape[0] > 3 * 256 and picture.shape[1] > 3 * 256
    assert (tmp_path / 'tb_logger/CNLRN_demo_joint').is_dir()
    # the clip restored by cnlrn infer, and its frame between the bicubic input and the sharp frame
    assert '$ cnlrn infer -i results/demo/blurry_clip.mp4' in out
    assert (tmp_path / 'results/demo/blurry_clip_cnlrn.mp4').stat().st_size > 0
    (width, height), _, _ = demo.QUICK_CLIP
    frame = cv2.imread(str(tmp_path / 'results/demo/video_frame.png'))
    assert frame.shape[1] > 3 * width * 4 and frame.shape[0] > height * 4
