"""cnlrn serve without a browser: the page's jobs give cnlrn infer's pixels; limits, messages, examples, the folder."""

import os
import signal
import time

import cv2
import numpy as np
import pytest

from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.data_prep.demo_data import make_demo_data
from cnlrn_arch.inference.image_io import UserImage
from cnlrn_arch.web.jobs import Restorer, bicubic, serving_folder, write_examples
from cnlrn_base.errors import UserError
from cnlrn_cli.main import main
from tests.helpers import tiny_infer_output


@pytest.fixture(scope='module')
def restorer(infer_setup):
    return Restorer(infer_setup / 'w.pth', infer_setup / 'tiny.yml', 'cpu')


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A silent 2-frame 16x12 clip."""
    path = tmp_path_factory.mktemp('clip') / 'clip.mp4'
    make_demo_clip(path, frames=2, size=(16, 12), audio_codec=None)
    return path


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('flags', [(), ('--tile', '12', '--self-ensemble')], ids=['whole', 'tiles-ensemble'])
def test_image_restored_as_infer_restores_it(restorer, infer_setup, tmp_path, flags):
    passes = []
    tile = 12 if flags else None
    result = restorer.restore(
        str(infer_setup / 'x.png'), str(tmp_path), tile, False, bool(flags), lambda *p: passes.append(p)
    )
    page = read(result.download)
    assert page.shape == (48, 80, 3)  # the 12x20 input x4
    np.testing.assert_array_equal(page, tiny_infer_output(infer_setup, f'infer-{len(flags)}', *flags))
    assert result.restored == result.download
    assert read(result.bicubic).shape == page.shape
    total = 2 * 8 if flags else 1  # 12-pixel tiles of 12x20: 1 x 2, each through the 8 flips/rotations
    assert passes == [(done, total) for done in range(1, total + 1)]


def test_clip_restored_as_infer_restores_it(restorer, infer_setup, clip, tmp_path):
    passes = []
    result = restorer.restore(str(clip), str(tmp_path), progress=lambda *p: passes.append(p))
    assert result.download.endswith('clip_cnlrn.mp4') and os.path.getsize(result.download)
    frames = tmp_path / 'frames'
    argv = ['infer', '-i', str(clip), '-o', str(tmp_path / 'infer'), '--frames-out', str(frames)]
    assert main([*argv, '--weights', str(infer_setup / 'w.pth'), '--opt', str(infer_setup / 'tiny.yml')]) == 0
    first = read(result.restored)
    assert first.shape == (48, 64, 3)
    np.testing.assert_array_equal(first, read(frames / 'clip_cnlrn' / '00000000.png'))
    assert read(result.bicubic).shape == first.shape
    assert passes == [(1, 2), (2, 2)]


@pytest.mark.parametrize('name', ['photo.png', 'clip.mp4'])
def test_bad_upload_named_by_its_file_name_only(restorer, tmp_path, name):
    uploads = tmp_path / 'server' / 'uploads'
    uploads.mkdir(parents=True)
    (uploads / name).write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    with pytest.raises(UserError) as err:
        restorer.restore(str(uploads / name), str(tmp_path))
    message = str(err.value)
    assert message.startswith(f'{name}: ') and str(tmp_path) not in message and '\n' not in message


def test_limits_refuse_before_decoding(infer_setup, clip, tmp_path):
    small = Restorer(infer_setup / 'w.pth', infer_setup / 'tiny.yml', 'cpu', max_pixels=100, max_frames=1)
    with pytest.raises(UserError, match=r'^x.png: 20x12 is 240 pixels, over the limit of 100'):
        small.restore(str(infer_setup / 'x.png'), str(tmp_path))
    with pytest.raises(UserError, match=r'^clip.mp4: 16x12 frames are 192 pixels, over the limit of 100$'):
        small.restore(str(clip), str(tmp_path))
    small.max_pixels = 1000
    with pytest.raises(UserError, match=r'^clip.mp4: 2 frames, over the limit of 1'):
        small.restore(str(clip), str(tmp_path))
    with pytest.raises(UserError, match=r'^tile side -8: must be at least 1'):
        small.restore(str(clip), str(tmp_path), tile=-8)


@pytest.mark.parametrize('channels', [2, 3, 4])
def test_bicubic_keeps_mode_and_gives_rgb(channels):
    bgra = np.array([1000, 2000, 3000, 4000], np.uint16)  # blue, green, red, alpha (gray, alpha for 2 channels)
    pixels = np.broadcast_to(bgra[:channels] if channels > 2 else bgra[[0, 3]], (3, 5, channels)).copy()
    up = bicubic(UserImage(pixels), 4)
    assert up.shape == (12, 20, channels) and up.dtype == np.uint16
    expected = {2: [1000, 4000], 3: [3000, 2000, 1000], 4: [3000, 2000, 1000, 4000]}[channels]
    assert (up == expected).all()  # a flat image stays flat; colours come in RGB order


def test_examples_are_the_demo_data_inputs(tmp_path):
    make_demo_data(str(tmp_path / 'demo'), crops_per_photo=1)
    (tmp_path / 'examples').mkdir()
    paths = write_examples(str(tmp_path / 'examples'))
    lr = tmp_path / 'demo' / 'val' / 'blur_bicubic_X4'
    for clip_index, path in enumerate(paths[:3]):
        np.testing.assert_array_equal(read(path), read(lr / f'{clip_index:03d}_00000000.png'))
    assert [os.path.basename(p) for p in paths] == ['astronaut.png', 'coffee.png', 'chelsea.png', 'demo_clip.mp4']


def test_serving_folder_removed_on_sigterm(monkeypatch):
    monkeypatch.delenv('GRADIO_TEMP_DIR', raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), serving_folder() as folder:
        assert os.environ['GRADIO_TEMP_DIR'].startswith(folder)
        open(os.path.join(folder, 'result.png'), 'wb').close()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises at once
    assert not os.path.exists(folder)
    assert 'GRADIO_TEMP_DIR' not in os.environ
    assert signal.getsignal(signal.SIGTERM) is handler


@pytest.mark.parametrize(
    'host, warned', [('127.0.0.1', False), ('localhost', False), ('::1', False), ('0.0.0.0', True), ('pc.lan', True)]
)
def test_serve_warns_off_loopback(monkeypatch, capsys, host, warned):
    served = []
    monkeypatch.setattr('cnlrn_arch.web.app.serve', lambda *args: served.append(args))
    assert main(['serve', '--host', host, '--port', '8000']) == 0
    assert served[0][2:4] == (host, 8000)
    stderr = capsys.readouterr().err
    assert (f'cnlrn serve: warning: listening on {host}' in stderr) == warned
