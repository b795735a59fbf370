"""``cnlrn infer``: image modes, sizes, skipped inputs, weights errors, and tiled inference."""

import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from cnlrn_arch.inference.network import LoadedNetwork
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.main import main
from tests.helpers import TINY_CNLRN, assert_one_line_error, infer, noise, tiny_net


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
    (src / 'dangling.png').symlink_to(tmp_path / 'gone.png')
    (src / 'loop.png').symlink_to(src / 'loop.png')

    status = infer('-i', src, '-o', out, '--weights', model['checkpoint'], '--opt', model['opt'])

    stderr = capsys.readouterr().err
    assert status == 1, stderr
    skipped = [line for line in stderr.splitlines() if 'skipped' in line]
    assert skipped == [
        f'cnlrn infer: skipped {src / "corrupt.png"}: not an image file (format not recognised)',
        f'cnlrn infer: skipped {src / "dangling.png"}: cannot read (No such file or directory)',
        f'cnlrn infer: skipped {src / "empty.jpg"}: empty file',
        f'cnlrn infer: skipped {src / "loop.png"}: cannot read (Too many levels of symbolic links)',
    ], stderr
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

    # writing next to the inputs with no suffix, all as PNG: a.jpg -> a.png is new, a.bmp would give a.png
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
        '--ext',
        'png',
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
    assert (src / 'b.png').read_bytes() == b_before
    assert 'wrote 1 of 3 images' in stdout
    assert f'weights: {model["raw"]}\n' in stdout
    tiled = cv2.imread(str(src / 'a.png'), cv2.IMREAD_UNCHANGED).astype(int)
    argv = ['-i', src / 'a.jpg', '-o', tmp_path / 'whole', '--ext', 'png', '--weights', model['raw']]
    argv += ['--opt', model['opt']]
    assert infer(*argv, '--self-ensemble') == 0
    whole = cv2.imread(str(tmp_path / 'whole' / 'a_cnlrn.png'), cv2.IMREAD_UNCHANGED).astype(int)
    assert tiled.shape == whole.shape == (36, 44, 3)
    # Tiles see less context than the whole image (the attention is global), so the outputs differ: for
    # this network and image by at most 4 levels, 0.31 on average (float reordering moves this by at most
    # 1 level). Each tile's ensemble with its flips left in place gives 7 and 0.62, no ensemble in the
    # tiles 18 and 1.74, tiles placed one output pixel off 17 and 1.76.
    difference = np.abs(tiled - whole)
    assert difference.max() <= 6 and difference.mean() < 0.45


def test_without_weights_the_shipped_demo_checkpoint_restores_and_says_so(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 8, 3)))
    assert infer('-i', tmp_path / 'x.png', '-o', tmp_path / 'out', '--device', 'cpu') == 0
    stdout = capsys.readouterr().out
    name = os.path.basename(DEMO_CHECKPOINT)
    assert f'weights: {name}, the shipped demo checkpoint, trained on the embedded demo data' in stdout
    default = cv2.imread(str(tmp_path / 'out' / 'x_cnlrn.png'))
    named = ['-o', tmp_path / 'named', '--weights', DEMO_CHECKPOINT, '--device', 'cpu']
    assert infer('-i', tmp_path / 'x.png', *named) == 0
    assert np.array_equal(default, cv2.imread(str(tmp_path / 'named' / 'x_cnlrn.png')))
    assert f'weights: {name}, the shipped demo checkpoint' in capsys.readouterr().out


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

    monkeypatch.setattr('cnlrn_arch.inference.upscale.upscale', exhausted)
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


def test_gray_alpha_stays_gray_alpha(model, tmp_path):
    la = np.dstack([noise((7, 9), seed=1), noise((7, 9), seed=2)])
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    assert (
        infer('-i', tmp_path / 'la.png', '-o', tmp_path, '--weights', model['checkpoint'], '--opt', model['opt']) == 0
    )
    written = Image.open(tmp_path / 'la_cnlrn.png')
    assert written.mode == 'LA' and written.size == (36, 28)
    gray, alpha = np.moveaxis(np.asarray(written).astype(int), 2, 0)
    rgb = expected_rgb(model['net'], cv2.cvtColor(la[..., 0], cv2.COLOR_GRAY2BGR))
    assert np.abs(gray - np.round(rgb.mean(axis=2) * 255)).max() <= 1
    want_alpha = cv2.resize(la[..., 1] / np.float32(255), (36, 28), interpolation=cv2.INTER_CUBIC)
    assert np.abs(alpha - np.round(np.clip(want_alpha, 0, 1) * 255)).max() <= 1


def test_exif_orientation_is_applied_so_the_output_is_upright(model, tmp_path):
    """A JPEG stored sideways with orientation 6 (turn 90 degrees clockwise to view) is restored as viewers show it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(noise((12, 8, 3))).save(tmp_path / 'sideways.jpg', exif=exif, quality=95)
    stored = cv2.imread(str(tmp_path / 'sideways.jpg'), cv2.IMREAD_UNCHANGED)  # the samples as stored: 12 x 8
    assert stored.shape == (12, 8, 3)
    cv2.imwrite(str(tmp_path / 'upright.png'), np.rot90(stored, -1))  # the same samples, turned as viewers turn them
    argv = ['-o', tmp_path / 'out', '--ext', 'png', '--weights', model['checkpoint'], '--opt', model['opt']]
    assert infer('-i', tmp_path / 'sideways.jpg', tmp_path / 'upright.png', *argv) == 0
    sideways = cv2.imread(str(tmp_path / 'out' / 'sideways_cnlrn.png'), cv2.IMREAD_UNCHANGED)
    upright = cv2.imread(str(tmp_path / 'out' / 'upright_cnlrn.png'), cv2.IMREAD_UNCHANGED)
    assert sideways.shape == (32, 48, 3) and np.array_equal(sideways, upright)


def test_animations_and_images_over_the_pixel_limit_are_skipped(model, tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    frames = [Image.fromarray(noise((6, 5, 3), seed=i)) for i in range(4)]
    frames[0].save(src / 'anim.webp', save_all=True, append_images=frames[1:], lossless=True)
    cv2.imwrite(str(src / 'big.png'), noise((10, 11, 3)))
    cv2.imwrite(str(src / 'small.png'), noise((10, 10, 3)))
    argv = ['-i', src, '-o', tmp_path / 'out', '--weights', model['checkpoint'], '--opt', model['opt']]
    assert infer(*argv, '--max-pixels', 100, '--tile', 256) == 1
    stderr = capsys.readouterr().err
    assert (
        f'skipped {src / "anim.webp"}: 4 frames; cnlrn infer restores single images, extract the frames first' in stderr
    )
    assert f'skipped {src / "big.png"}: 11x10 is 110 pixels, over the limit of 100; not decoded' in stderr
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['small_cnlrn.png']


class BrokenAfterRow(torch.nn.Module):
    """Nearest-neighbour x4 whose output is NaN from output row ``row`` on."""

    def __init__(self, row):
        super().__init__()
        self.row = row

    def forward(self, x):
        y = F.interpolate(x, scale_factor=4, mode='nearest')
        y[..., self.row :, :] = float('nan')
        return y


def test_non_finite_output_is_not_written(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        'cnlrn_arch.inference.network.load_network', lambda *args: LoadedNetwork.of_torch(BrokenAfterRow(100))
    )
    cv2.imwrite(str(tmp_path / 'x.png'), noise((40, 8, 3)))  # the first band, output rows 0-63, is encoded first
    out = tmp_path / 'out'
    assert infer('-i', tmp_path / 'x.png', '-o', out, '--weights', model['checkpoint']) == 1
    stderr = capsys.readouterr().err
    assert f'skipped {tmp_path / "x.png"}: the output holds NaN or Inf (first in row 100); nothing written' in stderr
    assert list(out.iterdir()) == []  # neither the PNG nor its temporary file


def test_non_finite_weights_are_refused(model, tmp_path, capsys):
    state = model['net'].state_dict()
    state['SRNet.tail.0.bias'] = state['SRNet.tail.0.bias'].clone()
    state['SRNet.tail.0.bias'][1] = float('inf')
    torch.save({'params': state}, tmp_path / 'inf.pth')
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 8, 3)))
    argv = ['-i', tmp_path / 'x.png', '-o', tmp_path / 'out', '--opt', model['opt']]
    assert infer(*argv, '--weights', tmp_path / 'inf.pth') == 2
    assert_one_line_error(capsys.readouterr().err, f'{tmp_path / "inf.pth"}: SRNet.tail.0.bias holds NaN or Inf')
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert infer(*argv, '--weights', tmp_path / 'empty.pth') == 2
    assert_one_line_error(capsys.readouterr().err, f'{tmp_path / "empty.pth"}: empty file, not PyTorch weights')


@pytest.mark.parametrize(
    'native, ratio, said', [(False, 0.5, 'emulated'), (True, 1.4, 'runs slower'), (True, 0.6, None)]
)
def test_bf16_slower_than_float32_on_the_cpu_is_one_line_saying_to_leave_it_off(
    infer_setup, tmp_path, capsys, monkeypatch, native, ratio, said
):
    from cnlrn_arch.runtime import speed

    monkeypatch.setattr(speed, 'bf16_native', lambda device: native)
    monkeypatch.setattr(speed, 'cpu_bf16_time_ratio', lambda: ratio)
    args = ['-i', infer_setup / 'x.png', '-o', tmp_path, '--weights', infer_setup / 'w.pth', '--device', 'cpu']
    assert infer(*args, '--bf16') == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if 'leave it off' in line]
    assert notes == ([f'note: --bf16: {speed.slow_precision_note("bf16", "cpu")}'] if said else [])
    assert not said or said in notes[0]
    assert (tmp_path / 'x_cnlrn.png').is_file()
    # float32 never gets the note
    assert infer(*args, '--suffix', '_fp32') == 0 and 'leave it off' not in capsys.readouterr().err


def test_the_bf16_probe_times_both_precisions():
    from cnlrn_arch.runtime import speed

    assert speed.cpu_bf16_time_ratio() > 0


def test_an_image_output_replaces_only_what_cnlrn_infer_wrote_unless_overwrite(model, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'x.png'), noise((8, 8, 3)))
    out = tmp_path / 'out'
    out.mkdir()
    cv2.imwrite(str(out / 'x_cnlrn.png'), noise((4, 4, 3), seed=1))  # the user's, of the output's name
    users = (out / 'x_cnlrn.png').read_bytes()
    argv = ['-i', tmp_path / 'x.png', '-o', out, '--weights', model['checkpoint'], '--opt', model['opt']]

    assert infer(*argv) == 1
    assert f'{out / "x_cnlrn.png"} exists and was not written by cnlrn infer' in capsys.readouterr().err
    assert (out / 'x_cnlrn.png').read_bytes() == users
    assert infer(*argv, '--overwrite') == 0
    assert cv2.imread(str(out / 'x_cnlrn.png')).shape == (32, 32, 3)
    assert infer(*argv) == 0  # its own output: replaced without --overwrite
