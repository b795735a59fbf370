"""``cnlrn infer``: image modes, sizes, skipped inputs, weights errors, and tiled inference."""

import cv2
import numpy as np
import pytest
import torch
import yaml

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.inference.tiling import tiled_forward
from cnlrn_cli.main import main
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, assert_one_line_error


def infer(*args):
    """``cnlrn infer ARGS`` in this process: its exit status."""
    return main(['infer', *map(str, args)])


def tiny_net(seed=0, **changes):
    torch.manual_seed(seed)
    return CNLRN(**{**TINY_CNLRN_ARGS, **changes}).eval()


def noise(shape, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)


def expected_rgb(net, bgr):
    """What the network makes of a BGR image, as the RGB floats in [0, 1] that infer quantizes."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / np.iinfo(bgr.dtype).max
    with torch.inference_mode():
        out = net(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    return out[0].clamp(0, 1).permute(1, 2, 0).numpy()


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp('model')
    net = tiny_net()
    torch.save({'params': net.state_dict()}, root / 'checkpoint.pth')
    torch.save(net.state_dict(), root / 'raw.pth')
    torch.save({'params': tiny_net(n_feats=32).state_dict()}, root / 'wrong.pth')
    (root / 'tiny.yml').write_text(yaml.safe_dump({'network_g': TINY_CNLRN}))
    return dict(
        net=net,
        checkpoint=root / 'checkpoint.pth',
        raw=root / 'raw.pth',
        wrong=root / 'wrong.pth',
        opt=root / 'tiny.yml',
    )


def test_folder_of_every_mode_with_bad_files(model, tmp_path, capsys):
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir()
    images = {
        'odd.png': noise((13, 21, 3)),
        'gray.png': noise((10, 7), seed=1),
        'rgba.png': noise((9, 12, 4), seed=2),
        'deep.png': noise((11, 8, 3), np.uint16, seed=3),
        'deep_gray.tif': noise((6, 9), np.uint16, seed=4),
    }
    for name, img in images.items():
        assert cv2.imwrite(str(src / name), img)
    (src / 'corrupt.png').write_bytes(np.random.default_rng(5).bytes(300))
    (src / 'empty.jpg').write_bytes(b'')
    (src / 'notes.txt').write_text('not an image, and not listed: folders give image extensions only')

    status = infer('-i', src, '-o', out, '--weights', model['checkpoint'], '--opt', model['opt'])

    stderr = capsys.readouterr().err
    assert status == 1, stderr
    skipped = [line for line in stderr.splitlines() if 'skipped' in line]
    assert len(skipped) == 2 and 'corrupt.png' in skipped[0] and 'empty.jpg' in skipped[1], stderr
    assert 'notes.txt' not in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f'{n.split(".")[0]}_cnlrn.png' for n in images)
    for name, img in images.items():
        written = cv2.imread(str(out / f'{name.split(".")[0]}_cnlrn.png'), cv2.IMREAD_UNCHANGED)
        assert written.dtype == img.dtype, name
        assert written.shape == (img.shape[0] * 4, img.shape[1] * 4, *img.shape[2:]), name
    # values, not just sizes: catches swapped channels and wrong scaling of 16-bit samples
    for name in ('odd.png', 'deep.png'):
        img = images[name]
        written = cv2.imread(str(out / f'{name[:-4]}_cnlrn.png'), cv2.IMREAD_UNCHANGED)
        want = np.round(expected_rgb(model['net'], img) * np.iinfo(img.dtype).max)
        # 1 level of slack: CPU threading may reorder float sums
        assert np.abs(cv2.cvtColor(written, cv2.COLOR_BGR2RGB) - want).max() <= 1, name
    alpha = cv2.imread(str(out / 'rgba_cnlrn.png'), cv2.IMREAD_UNCHANGED)[..., 3]
    want_alpha = cv2.resize(images['rgba.png'][..., 3] / np.float32(255), (48, 36), interpolation=cv2.INTER_CUBIC)
    assert np.abs(alpha - np.round(np.clip(want_alpha, 0, 1) * 255)).max() <= 1


def test_glob_raw_weights_tiles_and_name_clashes(model, tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    for name, seed in (('a.jpg', 0), ('a.bmp', 1), ('b.png', 2)):
        assert cv2.imwrite(str(src / name), noise((9, 11, 3), seed=seed))
    b_before = (src / 'b.png').read_bytes()

    # writing next to the inputs with no suffix: a.jpg -> a.png is new, a.bmp would give a.png
    # again and b.png would replace itself, so both of those are skipped
    status = infer(
        '-i',
        src / '*.jpg',
        src / 'a.bmp',
        src / 'b.png',
        '-o',
        src,
        '--suffix',
        '',
        '--weights',
        model['raw'],
        '--opt',
        model['opt'],
        '--tile',
        6,
        '--tile-pad',
        2,
        '--self-ensemble',
    )

    stdout, stderr = capsys.readouterr()
    assert status == 1, stderr
    assert 'a.bmp: its output' in stderr and 'already written from' in stderr
    assert 'b.png: its output' in stderr and 'would overwrite the input' in stderr
    assert cv2.imread(str(src / 'a.png'), cv2.IMREAD_UNCHANGED).shape == (36, 44, 3)
    assert (src / 'b.png').read_bytes() == b_before
    assert 'wrote 1 of 3 images' in stdout


def test_wrong_weights_is_one_line_naming_the_file(model, tmp_path, capsys):
    img = tmp_path / 'x.png'
    cv2.imwrite(str(img), noise((8, 8, 3)))
    assert infer('-i', img, '-o', tmp_path / 'out', '--weights', model['wrong'], '--opt', model['opt']) == 2
    assert_one_line_error(capsys.readouterr().err, 'wrong.pth', 'do not fit CNLRN')
    assert not (tmp_path / 'out' / 'x_cnlrn.png').exists()


@pytest.mark.parametrize(
    'argv, message',
    [
        (['-i', '{tmp}/absent*.png'], 'no image matches the pattern'),
        (['-i', '{tmp}', '--compile', 'nope'], "--compile: Invalid backend: 'nope'"),
        (['-i', '{tmp}', '--tile-pad', '4'], '--tile-pad needs --tile'),
    ],
)
def test_usage_errors(model, tmp_path, capsys, argv, message):
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 8, 3)))
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(['infer', *argv, '-o', str(tmp_path / 'out'), '--weights', str(model['checkpoint'])]) == 2
    assert message in capsys.readouterr().err


def test_out_of_memory_suggests_tiles(model, tmp_path, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')

    monkeypatch.setattr('cnlrn_arch.inference.restore_files.upscale', exhausted)
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 8, 3)))
    argv = [
        'infer',
        '-i',
        str(tmp_path / 'x.png'),
        '-o',
        str(tmp_path / 'out'),
        '--weights',
        str(model['checkpoint']),
        '--opt',
        str(model['opt']),
    ]
    assert main(argv) == 1
    assert 'x.png: out of memory on 8x8 pixels; retry with --tile 256' in capsys.readouterr().err


@pytest.fixture(scope='module')
def lr_image():
    torch.manual_seed(1)
    return torch.rand(1, 3, 32, 48)


def test_tiles_agree_with_the_whole_image(lr_image):
    net = tiny_net()
    with torch.inference_mode():
        whole = net(lr_image)
        tiled = tiled_forward(net, lr_image, 16, 8)
    assert tiled.shape == whole.shape
    # Not zero: the non-local attention is global, so a tile attends to its 32x32 (or smaller)
    # padded window instead of the whole 32x48 image, and zero padding of the convolutions meets
    # the tile edge instead of neighbouring pixels. Measured over 5 random tiny networks: largest
    # difference 0.006-0.011, mean 0.0006-0.0011, outputs spanning about -0.3..0.4 (std 0.06-0.12);
    # abutting tiles without overlap (tile_pad 0) differ by up to 0.14-0.30.
    difference = (tiled - whole).abs()
    assert difference.max() < 0.02 and difference.mean() < 0.002
    with torch.inference_mode():
        abutting = tiled_forward(net, lr_image, 16, 0)
    assert (abutting - whole).abs().max() > 5 * difference.max()


def test_blending_fades_tiles_into_each_other():
    def forward(x):  # each tile comes out as one constant: 1, 2 (top row), 3, 4 (bottom row)
        forward.calls += 1
        return torch.full_like(x, float(forward.calls))

    forward.calls = 0
    out = tiled_forward(forward, torch.zeros(1, 1, 40, 40), 20, 8)
    assert forward.calls == 4
    # far from the overlaps each tile counts alone
    assert out[0, 0, 0, 0] == 1 and out[0, 0, 0, -1] == 2 and out[0, 0, -1, 0] == 3 and out[0, 0, -1, -1] == 4
    # a seam would step by 1 across columns and by 2 across rows; spread over the 16-pixel overlap
    # by the raised cosine, the steepest steps are pi/32 per unit of difference
    assert out.diff(dim=-1).abs().max() < 1.01 * np.pi / 32
    assert out.diff(dim=-2).abs().max() < 2.01 * np.pi / 32


def test_one_tile_equals_the_whole_image(lr_image):
    net = tiny_net()
    with torch.inference_mode():
        assert torch.equal(tiled_forward(net, lr_image, 64, 8), net(lr_image))
