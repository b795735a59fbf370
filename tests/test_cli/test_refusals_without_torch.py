"""What an input claims is refused before torch is imported, whose import alone peaks near a gigabyte (issue 25):
a video frame over ``--max-pixels``, weights whose stored options ask for a huge network, an option file of
aliases of aliases.

Each case runs the entry point in a fresh interpreter, so that no import of another case or of the tests
hides one.
"""

import cv2
import numpy as np
import pytest

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.weights.files import write_checkpoint, write_safetensors
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, raw_h264, run_main_afresh
from tests.test_options.test_option_file import laughs


def call(module, *args, cwd):
    """(the last line printed, stderr) of ``module``'s ``main(args)`` in a fresh interpreter."""
    result = run_main_afresh(module, *args, cwd=cwd)
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_a_video_frame_over_max_pixels_is_refused_before_torch_is_imported(tmp_path):
    clip = tmp_path / 'grows.mkv'  # a raw H.264 stream, whose header tells the first frame's size only
    clip.write_bytes(raw_h264([(16, 12), (32, 24), (16, 12)]))
    args = ['infer', '-i', clip, '-o', tmp_path / 'out', '--max-pixels', 192]
    last, stderr = call('cnlrn_cli.main', *args, cwd=tmp_path)
    assert last == 'exit status 1 | torch imported: False', stderr
    # the line cnlrn infer prints where restoring meets the frame
    message = f'cnlrn infer: skipped {clip}: frame 1 is 32x24, 768 pixels, over the limit of 192'
    assert stderr.strip().splitlines() == [message]
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('kind', ['pth', 'safetensors', 'opt'])
def test_weights_whose_options_ask_for_a_huge_network_are_refused_before_torch_is_imported(kind, tmp_path):
    huge = dict(TINY_CNLRN, n_feats=4096)
    weights = tmp_path / f'w.{"safetensors" if kind == "safetensors" else "pth"}'
    writer = write_safetensors if kind == 'safetensors' else write_checkpoint
    writer(CNLRN(**TINY_CNLRN_ARGS).state_dict(), weights, TINY_CNLRN if kind == 'opt' else huge)
    (tmp_path / 'huge.yml').write_text(f'network_g: {huge}\n')
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((12, 16, 3), np.uint8))
    opt = ['--opt', tmp_path / 'huge.yml'] if kind == 'opt' else []
    args = ['infer', '-i', tmp_path / 'x.png', '-o', tmp_path / 'out', '--weights', weights, *opt]
    last, stderr = call('cnlrn_cli.main', *args, cwd=tmp_path)
    assert last == 'exit status 2 | torch imported: False', stderr
    source = tmp_path / 'huge.yml' if kind == 'opt' else f'{weights} (its stored options)'
    message = f'cnlrn infer: error: {source}: network_g:n_feats must be an integer in [1, 256], got 4096'
    assert stderr.strip().splitlines() == [message]


@pytest.mark.parametrize('phase', ['train', 'test'])
def test_an_option_file_of_aliases_of_aliases_is_refused_before_torch_is_imported(phase, tmp_path):
    (tmp_path / 'laughs.yml').write_text(laughs(9))
    last, stderr = call('cnlrn_cli.basicsr_runner', phase, '-opt', 'laughs.yml', cwd=tmp_path)
    assert last == 'exit status 2 | torch imported: False', stderr
    message = f'basicsr {phase}: error: laughs.yml:5: more than 100000 values once aliases are expanded'
    assert stderr.strip().splitlines() == [message]
