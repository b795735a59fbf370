"""``cnlrn infer --outscale S --ext {auto,png,jpg,webp}``: sizes, modes, bit depths, alpha, the marks, and the
default PNG path staying the streaming one."""

import os

import av
import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.inference.image_io import is_own_image, read_image, write_png
from cnlrn_arch.inference.restore_video import frame_png
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.upscale import upscale
from tests.helpers import TINY_CNLRN, decoded_frames, infer, noise, tiny_net


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp('model')
    net = tiny_net()
    torch.save({'params': net.state_dict()}, root / 'w.pth')
    (root / 'tiny.yml').write_text(yaml.safe_dump({'network_g': TINY_CNLRN}))
    # prepared as cnlrn infer runs it (channels-last on the CPU), so its outputs are the command's to the bit
    net = InferenceSettings().prepare(net)
    return dict(net=net, args=['--weights', root / 'w.pth', '--opt', root / 'tiny.yml', '--device', 'cpu'])


@pytest.fixture
def rgba16(tmp_path):
    """A 16-bit RGBA PNG of 9 x 7 pixels."""
    path = tmp_path / 'rgba16.png'
    assert cv2.imwrite(str(path), noise((7, 9, 4), np.uint16, seed=3))
    return path


def test_outscale_2_as_jpg_webp_and_png_of_a_16_bit_png_with_alpha(model, rgba16, tmp_path):
    out = tmp_path / 'out'
    assert infer('-i', rgba16, '-o', out / 'x4', *model['args']) == 0
    x4 = cv2.imread(str(out / 'x4' / 'rgba16_cnlrn.png'), cv2.IMREAD_UNCHANGED)
    assert x4.shape == (28, 36, 4) and x4.dtype == np.uint16
    for ext in ('jpg', 'webp', 'png'):
        assert infer('-i', rgba16, '-o', out / ext, '--outscale', 2, '--ext', ext, *model['args']) == 0
        assert os.listdir(out / ext) == [f'rgba16_cnlrn.{ext}']
    # PNG keeps 16 bits and alpha: the x4 output resized by Lanczos to 2 x the input's size, as Real-ESRGAN does
    png = cv2.imread(str(out / 'png' / 'rgba16_cnlrn.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(png, cv2.resize(x4, (18, 14), interpolation=cv2.INTER_LANCZOS4))
    with Image.open(out / 'jpg' / 'rgba16_cnlrn.jpg') as jpg, Image.open(out / 'webp' / 'rgba16_cnlrn.webp') as webp:
        assert (jpg.format, jpg.mode, jpg.size) == ('JPEG', 'RGB', (18, 14))  # alpha dropped, 8-bit
        assert (webp.format, webp.mode, webp.size) == ('WEBP', 'RGBA', (18, 14))  # alpha kept, 8-bit
        # WebP is lossless: the PNG's samples in 8 bits, RGB order
        np.testing.assert_array_equal(np.asarray(webp), np.round(png[..., [2, 1, 0, 3]] / 257).astype(np.uint8))
        assert np.abs(np.asarray(jpg).astype(int) - np.asarray(webp)[..., :3]).mean() < 12  # JPEG is lossy


@pytest.mark.parametrize(('outscale', 'size'), [(3.5, (31, 24)), (1, (9, 7)), (0.1, (1, 1))])
def test_outscale_gives_int_of_the_input_size_times_s(model, rgba16, tmp_path, outscale, size):
    assert infer('-i', rgba16, '-o', tmp_path, '--outscale', outscale, *model['args']) == 0
    with Image.open(tmp_path / 'rgba16_cnlrn.png') as written:
        assert written.size == size


def test_auto_keeps_png_jpeg_and_webp_and_writes_png_for_the_rest_gray_alpha_webp_as_rgba(model, tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    Image.fromarray(noise((6, 5, 3))).save(src / 'a.jpeg')
    Image.fromarray(np.dstack([noise((6, 5), seed=1), noise((6, 5), seed=2)]), 'LA').save(src / 'b.png')
    assert cv2.imwrite(str(src / 'c.bmp'), noise((6, 5, 3)))
    Image.fromarray(np.dstack([noise((6, 5), seed=1), noise((6, 5), seed=2)]), 'LA').save(src / 'd.png')
    assert infer('-i', src / 'a.jpeg', src / 'b.png', src / 'c.bmp', '-o', tmp_path / 'out', *model['args']) == 0
    assert sorted(os.listdir(tmp_path / 'out')) == ['a_cnlrn.jpg', 'b_cnlrn.png', 'c_cnlrn.png']
    assert infer('-i', src / 'd.png', '-o', tmp_path / 'webp', '--ext', 'webp', *model['args']) == 0
    with Image.open(tmp_path / 'webp' / 'd_cnlrn.webp') as webp:
        rgba = np.asarray(webp)
    assert rgba.shape == (24, 20, 4)  # WebP has no gray+alpha: the gray in three equal channels
    assert np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 0], rgba[..., 2])


def test_jpeg_and_webp_outputs_are_marked_so_a_rerun_replaces_them_and_a_foreign_one_is_kept(model, tmp_path, capsys):
    src, out = tmp_path / 'x.png', tmp_path / 'out'
    assert cv2.imwrite(str(src), noise((6, 5, 3)))
    out.mkdir()
    for ext in ('jpg', 'webp'):
        foreign = out / f'x_cnlrn.{ext}'
        Image.fromarray(noise((6, 5, 3))).save(foreign)
        assert not is_own_image(foreign)
        argv = ['-i', src, '-o', out, '--ext', ext, *model['args']]
        assert infer(*argv) == 1
        assert 'exists and was not written by cnlrn infer' in capsys.readouterr().err
        assert infer(*argv, '--overwrite') == 0 and is_own_image(foreign)
        os.utime(foreign, (0, 0))
        assert infer(*argv) == 0 and os.stat(foreign).st_mtime > 0  # its own output: replaced without --overwrite


def test_the_default_png_is_the_streaming_writer_s_bytes(model, tmp_path):
    """Without --outscale a PNG is written band by band as before: the bytes of write_png of upscale's bands."""
    src = tmp_path / 'x.png'
    # large enough that zlib emits data band by band: one whole image would make other IDAT chunks
    assert cv2.imwrite(str(src), noise((40, 37, 4), np.uint16))
    assert infer('-i', src, '-o', tmp_path, '--tile', 8, '--tile-pad', 2, *model['args']) == 0
    settings = InferenceSettings(tile=8, tile_pad=2)
    write_png(tmp_path / 'streamed.png', upscale(model['net'], read_image(src), settings))
    assert (tmp_path / 'x_cnlrn.png').read_bytes() == (tmp_path / 'streamed.png').read_bytes()


@pytest.mark.parametrize('value', ['0', '-2', 'nan', 'two'])
def test_outscale_must_be_a_positive_number(model, tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        infer('-i', tmp_path, '-o', tmp_path, '--outscale', value, *model['args'])
    assert '--outscale' in capsys.readouterr().err


def test_a_video_with_outscale_2_and_ext_jpg_is_an_mp4_of_each_x4_frame_resized(model, tmp_path):
    """--ext is for images; --outscale resizes each restored frame before it is encoded."""
    clip = tmp_path / 'clip.mp4'
    make_demo_clip(clip, frames=3, fps=12, size=(32, 24))
    out, frames = tmp_path / 'out', tmp_path / 'frames'
    argv = ['-i', clip, '-o', out, '--outscale', 2, '--ext', 'jpg', '--lossless', '--frames-out', frames]
    assert infer(*argv, *model['args']) == 0
    assert os.listdir(out) == ['clip_cnlrn.mp4']
    with av.open(str(out / 'clip_cnlrn.mp4')) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (64, 48)
    outputs, _ = decoded_frames(out / 'clip_cnlrn.mp4')
    assert len(outputs) == 3
    for index, rgb in enumerate(outputs):
        x4 = cv2.imread(frame_png(frames / 'clip_cnlrn', index))  # the frames keep the network's scale
        assert x4.shape == (96, 128, 3)
        want = cv2.resize(x4, (64, 48), interpolation=cv2.INTER_LANCZOS4)[..., ::-1]
        np.testing.assert_array_equal(rgb, want, err_msg=f'frame {index}')
