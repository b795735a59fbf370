"""Reading user images (header first, EXIF orientation, modes, frames) and streaming PNGs out."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from cnlrn_arch.inference import image_io
from cnlrn_arch.inference.image_io import UserImage, read_image, write_png
from cnlrn_base.errors import UserError
from tests.helpers import noise


def png_claiming(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` and whose pixel data is a few bytes: decoding it fails."""
    chunks = [(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)), (b'IDAT', zlib.compress(bytes(8)))]
    with open(path, 'wb') as f:
        f.write(image_io.PNG_SIGNATURE)
        for kind, data in [*chunks, (b'IEND', b'')]:
            f.write(struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data)))


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_turns_pixels_upright_as_pillow_does(tmp_path, orientation):
    rgb = noise((5, 7, 3), seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / 'x.png', exif=exif)  # PNG: lossless, so pixels compare exactly
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / 'x.png')))
    assert np.array_equal(read_image(tmp_path / 'x.png').pixels, cv2.cvtColor(upright, cv2.COLOR_RGB2BGR))


def split(img, *cuts):
    return [img[a:b] for a, b in zip((0, *cuts), (*cuts, len(img)))]


@pytest.mark.parametrize(
    'shape, dtype, mode',
    [
        ((9, 13), np.uint8, 'L'),
        ((9, 13, 2), np.uint8, 'LA'),
        ((9, 13, 3), np.uint8, 'RGB'),
        ((9, 13, 4), np.uint8, 'RGBA'),
        ((9, 13), np.uint16, 'I;16'),
        ((9, 13, 2), np.uint16, None),  # Pillow reads 16-bit gray+alpha as 8-bit
        ((9, 13, 3), np.uint16, None),
        ((9, 13, 4), np.uint16, None),
    ],
)
def test_png_written_in_bands_reads_back_exactly(tmp_path, shape, dtype, mode):
    img = noise(shape, dtype)
    write_png(tmp_path / 'x.png', split(img, 1, 5))
    if mode:
        assert Image.open(tmp_path / 'x.png').mode == mode
    pixels = read_image(tmp_path / 'x.png').pixels  # BGR(A), as OpenCV decodes
    if img.ndim == 3 and img.shape[2] >= 3:
        pixels = np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    assert pixels.dtype == dtype and np.array_equal(pixels, img)


def test_a_failing_producer_leaves_no_file(tmp_path):
    def bands():
        yield noise((4, 6, 3))
        raise UserError('the output holds NaN')

    with pytest.raises(UserError, match='NaN'):
        write_png(tmp_path / 'x.png', bands())
    assert list(tmp_path.iterdir()) == []


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    png_claiming(tmp_path / 'bomb.png', 10000, 10000)
    monkeypatch.setattr(image_io.cv2, 'imdecode', lambda *args: pytest.fail('decoded an image over the limit'))
    with pytest.raises(UserError) as err:
        read_image(tmp_path / 'bomb.png')
    assert str(err.value) == (
        f'{tmp_path / "bomb.png"}: 10000x10000 is 100000000 pixels, over the limit of 50000000; '
        'not decoded (raise the limit with --max-pixels)'
    )


def test_pixel_limit_can_be_raised(tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 9, 3)))
    with pytest.raises(UserError, match='8 is 72 pixels, over the limit of 71'):
        read_image(tmp_path / 'x.png', max_pixels=71)
    assert read_image(tmp_path / 'x.png', max_pixels=72).pixels.shape == (8, 9, 3)


@pytest.mark.parametrize('fmt', ['GIF', 'TIFF', 'PNG', 'WEBP'])
def test_several_frames_are_refused(tmp_path, fmt):
    frames = [Image.fromarray(noise((6, 5, 3), seed=i)) for i in range(3)]
    path = tmp_path / f'anim.{fmt.lower()}'
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(UserError) as err:
        read_image(path)
    assert str(err.value) == f'{path}: 3 frames; cnlrn infer restores single images, extract the frames first'


@pytest.mark.parametrize(
    'content, message',
    [(b'', 'empty file'), (b'not an image at all', 'not an image file (format not recognised)')],
)
def test_unreadable_contents_are_named(tmp_path, content, message):
    (tmp_path / 'x.png').write_bytes(content)
    with pytest.raises(UserError) as err:
        read_image(tmp_path / 'x.png')
    assert str(err.value) == f'{tmp_path / "x.png"}: {message}'


def test_gray_alpha_is_read_as_two_channels(tmp_path):
    la = noise((6, 7, 2))
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    image = read_image(tmp_path / 'la.png')
    assert image.gray and image.has_alpha and np.array_equal(image.pixels, la)
    rgb = image.rgb(slice(1, 4), slice(None))
    assert rgb.shape == (3, 7, 3) and np.array_equal(rgb[..., 0], la[1:4, :, 0] / np.float32(255))


def test_network_input_is_rgb_in_zero_one():
    image = UserImage(np.array([[[0, 128, 65535, 1]]], np.uint16))  # one BGRA pixel
    assert np.array_equal(image.rgb(slice(None), slice(None)), np.array([[[1, 128 / 65535, 0]]], np.float32))
    assert np.array_equal(image.alpha(slice(None)), np.array([[1 / 65535]], np.float32))
