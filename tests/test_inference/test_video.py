"""``cnlrn infer`` on videos: frames, timing and audio kept, lossless frames equal to images, bad inputs, resumption."""

import os

import av
import cv2
import numpy as np
import pytest
import torch
import yaml

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.inference.network import LoadedNetwork
from cnlrn_arch.inference.restore_video import FRAMES_STAMP, frame_png, restore_video
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_base.errors import UserError
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS, assert_one_line_error, decoded_frames, infer, noise, raw_h264

FRAMES = 12
SIZE = (32, 24)
CPU = InferenceSettings()


def restore(net, path, out_path, settings=CPU, network_opt=None, **kwargs):
    """:func:`restore_video` of the torch network ``net``, described as ``load_network`` describes one."""
    return restore_video(LoadedNetwork.of_torch(net, network_opt=network_opt), path, out_path, settings, **kwargs)


def audio_packets(path):
    """The bytes of every audio packet of ``path``, stream by stream."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp('model')
    torch.manual_seed(0)
    net = CNLRN(**TINY_CNLRN_ARGS).eval()
    torch.save({'params': net.state_dict()}, root / 'w.pth')
    (root / 'tiny.yml').write_text(yaml.safe_dump({'network_g': TINY_CNLRN}))
    return dict(net=net, weights=root / 'w.pth', opt=root / 'tiny.yml')


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A 1 s, 12 fps clip of 32x24 LR frames with an AAC tone."""
    path = tmp_path_factory.mktemp('clip') / 'clip.mp4'
    make_demo_clip(path, frames=FRAMES, fps=12, size=SIZE)
    return path


def test_lossless_video_keeps_timing_and_audio_and_each_frame_equals_the_image_result(model, clip, tmp_path):
    out, frames_out = tmp_path / 'out', tmp_path / 'frames'
    common = ['--weights', model['weights'], '--opt', model['opt'], '--device', 'cpu']
    assert infer('-i', clip, '-o', out, '--lossless', '--frames-out', frames_out, *common) == 0

    restored = out / 'clip_cnlrn.mp4'
    assert sorted(os.listdir(out)) == ['clip_cnlrn.mp4']  # no temporary file left
    with av.open(str(clip)) as src, av.open(str(restored)) as dst:
        src_video, dst_video = src.streams.video[0], dst.streams.video[0]
        assert dst_video.frames == src_video.frames == FRAMES
        assert dst_video.average_rate == src_video.average_rate == 12
        assert dst.duration == src.duration
        assert (dst_video.width, dst_video.height) == (SIZE[0] * 4, SIZE[1] * 4)
        assert [s.codec_context.name for s in dst.streams.audio] == ['aac']
    assert audio_packets(restored) == audio_packets(clip)

    inputs, times = decoded_frames(clip)
    outputs, out_times = decoded_frames(restored)
    assert out_times == times
    # each input frame as a PNG, restored as an image
    pngs = tmp_path / 'pngs'
    pngs.mkdir()
    for index, rgb in enumerate(inputs):
        assert cv2.imwrite(str(pngs / f'{index:02d}.png'), rgb[..., ::-1])
    assert infer('-i', pngs, '-o', tmp_path / 'images', *common) == 0
    for index, rgb in enumerate(outputs):
        as_image = cv2.imread(str(tmp_path / 'images' / f'{index:02d}_cnlrn.png'))[..., ::-1]
        np.testing.assert_array_equal(rgb, as_image, err_msg=f'frame {index}')
        np.testing.assert_array_equal(cv2.imread(frame_png(frames_out / 'clip_cnlrn', index)), as_image[..., ::-1])


def test_variable_rate_odd_sized_clip_keeps_timestamps_and_goes_into_mkv_for_its_audio(model, tmp_path):
    # 8-bit PCM cannot be stored in MP4: the output is Matroska
    clip = tmp_path / 'vfr.mkv'
    make_demo_clip(clip, frames=9, size=(17, 13), pix_fmt='yuv444p', audio_codec='pcm_u8', variable_rate=True)
    frames = restore(model['net'], clip, tmp_path / 'vfr.mkv.out.mkv', crf=30, progress=0)

    assert frames == 9
    _, times = decoded_frames(clip)
    outputs, out_times = decoded_frames(tmp_path / 'vfr.mkv.out.mkv')
    assert len(set(np.diff(times).round(3))) == 3  # the clip's frames are irregularly spaced
    assert out_times == times
    assert outputs[0].shape == (13 * 4, 17 * 4, 3)
    assert audio_packets(tmp_path / 'vfr.mkv.out.mkv') == audio_packets(clip)
    assert infer('-i', clip, '-o', tmp_path / 'out', '--weights', model['weights'], '--opt', model['opt']) == 0
    assert os.listdir(tmp_path / 'out') == ['vfr_cnlrn.mkv']


@pytest.fixture(scope='module')
def bad_videos(clip, tmp_path_factory):
    """name -> (file, what its one-line error says)."""
    root = tmp_path_factory.mktemp('bad')
    data = clip.read_bytes()
    (root / 'truncated.mp4').write_bytes(data[: len(data) * 6 // 10])  # the index, at the end, is cut off
    make_demo_clip(root / 'fast.mp4', frames=FRAMES, size=SIZE, container_options={'movflags': 'faststart'})
    data = (root / 'fast.mp4').read_bytes()
    (root / 'truncated_fast.mp4').write_bytes(data[: len(data) * 6 // 10])  # the index first: frames are missing
    os.remove(root / 'fast.mp4')
    for name, codecs in (
        ('truncated.mkv', {}),
        ('truncated.webm', {'video_codec': 'libvpx-vp9', 'audio_codec': 'libopus'}),
    ):
        whole = root / f'whole{os.path.splitext(name)[1]}'
        make_demo_clip(whole, frames=FRAMES, size=SIZE, **codecs)
        data = whole.read_bytes()
        (root / name).write_bytes(data[: len(data) * 6 // 10])  # the header, with the duration, stays
        os.remove(whole)
    with av.open(str(root / 'audio_only.mp4'), 'w') as out:
        stream = out.add_stream('aac', rate=48000, layout='mono')
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
        frame.sample_rate = 48000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    make_demo_clip(root / 'mpeg4.avi', frames=2, size=SIZE, video_codec='mpeg4', audio_codec=None)
    data = (root / 'mpeg4.avi').read_bytes()
    # a FourCC no decoder knows
    (root / 'unknown_codec.avi').write_bytes(data.replace(b'FMP4', b'QQQQ'))
    os.remove(root / 'mpeg4.avi')
    (root / 'text.mkv').write_text('not a video')
    return {
        'truncated.mp4': 'cannot open as a video (Invalid data found when processing input)',
        'truncated_fast.mp4': 'truncated or damaged, ',
        'truncated.mkv': 'truncated or damaged, its video stops at ',
        'truncated.webm': 'truncated or damaged, its video stops at ',
        'audio_only.mp4': 'no video stream',
        'unknown_codec.avi': 'its video codec is not supported',
        'text.mkv': 'cannot open as a video',
    }, root


def test_bad_videos_are_one_line_each_and_leave_no_output(model, bad_videos, tmp_path, capsys):
    messages, root = bad_videos
    out = tmp_path / 'out'

    status = infer('-i', root, '-o', out, '--weights', model['weights'], '--opt', model['opt'])

    assert status == 1
    skipped = [line for line in capsys.readouterr().err.splitlines() if 'skipped' in line]
    assert len(skipped) == len(messages), skipped
    for line, (name, message) in zip(skipped, sorted(messages.items())):
        assert line.startswith(f'cnlrn infer: skipped {root / name}: {message}'), line
    assert not out.exists()  # refused as they were read, before the network was loaded
    with pytest.raises(UserError) as err:
        restore(model['net'], root / 'truncated_fast.mp4', tmp_path / 'x.mp4', progress=0)
    assert_one_line_error(str(err.value), root / 'truncated_fast.mp4', 'of 12 frames')
    assert not (tmp_path / 'x.mp4').exists()


def test_a_video_of_frames_over_max_pixels_is_skipped_before_decoding(model, clip, tmp_path, capsys):
    out = tmp_path / 'out'
    limit = SIZE[0] * SIZE[1] - 1
    argv = ['-i', clip, '-o', out, '--weights', model['weights'], '--opt', model['opt'], '--max-pixels', limit]
    assert infer(*argv) == 1
    expected = f'{clip}: {SIZE[0]}x{SIZE[1]} frames are {SIZE[0] * SIZE[1]} pixels, over the limit of {limit}'
    assert f'cnlrn infer: skipped {expected}' in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(UserError, match=f'^{expected}$'):
        restore(model['net'], clip, tmp_path / 'x.mp4', progress=False, max_pixels=limit)
    assert not (tmp_path / 'x.mp4').exists()


class InterruptAfter(torch.nn.Module):
    """``net`` counting its calls, that raises KeyboardInterrupt on call number ``calls`` + 1 (None: never)."""

    def __init__(self, net, calls=None):
        super().__init__()
        self.net, self.limit, self.calls = net, calls, 0

    def forward(self, x):
        if self.calls == self.limit:
            raise KeyboardInterrupt
        self.calls += 1
        return self.net(x)


def test_interrupted_run_leaves_no_video_and_resumes_from_the_frames_written(model, clip, tmp_path):
    out, frames_out = tmp_path / 'clip.mp4', tmp_path / 'frames'
    interrupted = InterruptAfter(model['net'], calls=5)
    with pytest.raises(KeyboardInterrupt):
        restore(interrupted, clip, out, lossless=True, frames_out=frames_out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ['frames']  # no video, not even a temporary one
    assert sorted(os.listdir(frames_out)) == [FRAMES_STAMP] + [f'{i:08d}.png' for i in range(5)]

    resumed = InterruptAfter(model['net'])
    assert restore(resumed, clip, out, lossless=True, frames_out=frames_out, progress=False) == FRAMES
    assert resumed.calls == FRAMES - 5
    restore(model['net'], clip, tmp_path / 'whole.mp4', lossless=True, progress=False)
    for resumed_frame, whole_frame in zip(decoded_frames(out)[0], decoded_frames(tmp_path / 'whole.mp4')[0]):
        np.testing.assert_array_equal(resumed_frame, whole_frame)


def test_frames_of_other_weights_or_settings_are_restored_again(model, clip, tmp_path, capsys):
    """A --frames-out folder of a run with other weights (or another input, or settings) holds no reusable frame."""
    frames_out = tmp_path / 'frames'
    restore(Nearest(), clip, tmp_path / 'nearest.mp4', lossless=True, frames_out=frames_out, progress=False)
    assert capsys.readouterr().err == ''
    counted = InterruptAfter(model['net'])
    restore(counted, clip, tmp_path / 'net.mp4', lossless=True, frames_out=frames_out, progress=False)
    assert counted.calls == FRAMES
    assert f'{frames_out}: {FRAMES} frames there were restored from another input or with other weights' in (
        capsys.readouterr().err
    )
    restore(model['net'], clip, tmp_path / 'whole.mp4', lossless=True, progress=False)
    for from_folder, whole in zip(decoded_frames(tmp_path / 'net.mp4')[0], decoded_frames(tmp_path / 'whole.mp4')[0]):
        np.testing.assert_array_equal(from_folder, whole)
    tiled = InterruptAfter(model['net'])
    tiles = InferenceSettings(tile=8, tile_pad=0)
    restore(tiled, clip, tmp_path / 't.mp4', tiles, lossless=True, frames_out=frames_out, progress=False)
    assert tiled.calls > 0  # another setting: not taken from the folder either


def test_frames_of_the_same_weights_under_other_network_options_are_restored_again(model, clip, tmp_path):
    """The naive attention computes what sdpa computes from the same weights, but the stamp cannot know that."""
    frames_out = tmp_path / 'frames'
    naive = {**TINY_CNLRN, 'attn_impl': 'naive'}
    restore(model['net'], clip, tmp_path / 'a.mp4', network_opt=naive, frames_out=frames_out, progress=False)
    again = InterruptAfter(model['net'])
    restore(again, clip, tmp_path / 'b.mp4', network_opt=naive, frames_out=frames_out, progress=False)
    assert again.calls == 0  # the same weights and options: every frame taken from the folder
    other = InterruptAfter(model['net'])
    restore(other, clip, tmp_path / 'c.mp4', network_opt=TINY_CNLRN, frames_out=frames_out, progress=False)
    assert other.calls == FRAMES


def test_crf_out_of_range_and_crf_with_lossless_are_refused(model, clip, tmp_path, capsys):
    common = ['-i', clip, '-o', tmp_path, '--weights', model['weights'], '--opt', model['opt']]
    assert infer(*common, '--crf', 52) == 2
    assert_one_line_error(capsys.readouterr().err, '--crf 52')
    with pytest.raises(SystemExit):
        infer(*common, '--crf', 20, '--lossless')
    assert 'not allowed with argument' in capsys.readouterr().err


class Nearest(torch.nn.Module):
    """x4 by repeating pixels: restore_video's bookkeeping without a network's cost."""

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=4)


def test_display_rotation_is_kept(tmp_path):
    clip = tmp_path / 'phone.mp4'
    with av.open(str(clip), 'w') as out:
        stream = out.add_stream('libx264', rate=12)
        stream.width, stream.height, stream.pix_fmt = 16, 8, 'yuv420p'
        stream.set_display_rotation(90)
        for pts in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((8, 16, 3), 50 * pts, np.uint8), format='rgb24')
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    restore(Nearest(), clip, tmp_path / 'out.mp4', progress=False)

    with av.open(str(tmp_path / 'out.mp4')) as restored:
        assert [frame.rotation for frame in restored.decode(video=0)] == [90] * 3


def test_onnxruntime_backend_restores_videos_as_torch_does(model, clip, tmp_path):
    from cnlrn_arch.weights.onnx_file import export_onnx

    export_onnx(model['net'], tmp_path / 'w.onnx')
    common = ['-i', clip, '--lossless', '--device', 'cpu']
    assert infer(*common, '-o', tmp_path / 'onnx', '--backend', 'onnxruntime', '--weights', tmp_path / 'w.onnx') == 0
    assert infer(*common, '-o', tmp_path / 'torch', '--weights', model['weights'], '--opt', model['opt']) == 0

    onnx_frames, onnx_times = decoded_frames(tmp_path / 'onnx' / 'clip_cnlrn.mp4')
    torch_frames, torch_times = decoded_frames(tmp_path / 'torch' / 'clip_cnlrn.mp4')
    assert onnx_times == torch_times and len(onnx_frames) == FRAMES
    # float32 in both, summed in other orders: a sample may round the other way
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(onnx_frames, torch_frames)) <= 1


class OutOfMemoryOnBatches(torch.nn.Module):
    """``net`` that runs out of memory, as the CPU allocator reports it, on more than one frame at once."""

    def __init__(self, net):
        super().__init__()
        self.net, self.batches = net, []

    def forward(self, x):
        self.batches.append(len(x))
        if len(x) > 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000000000000 bytes")
        return self.net(x)


def test_frames_in_batches_equal_frames_one_at_a_time_and_running_out_of_memory_goes_on_one_at_a_time(
    model, clip, tmp_path
):
    restore(model['net'], clip, tmp_path / 'single.mp4', lossless=True, progress=False)
    restore(model['net'], clip, tmp_path / 'batched.mp4', lossless=True, progress=False, batch=5)
    running_out = OutOfMemoryOnBatches(model['net'])
    restore(running_out, clip, tmp_path / 'fallback.mp4', lossless=True, progress=False, batch=5)

    single, batched, fallback = (
        decoded_frames(tmp_path / f'{name}.mp4')[0] for name in ('single', 'batched', 'fallback')
    )
    assert len(batched) == FRAMES
    # a batch sums in another order: a sample may round the other way
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(single, batched)) <= 1
    assert running_out.batches == [5] + [1] * FRAMES
    for a, b in zip(single, fallback):
        np.testing.assert_array_equal(a, b)


def test_frames_out_never_touches_frame_pngs_it_did_not_write(clip, tmp_path):
    """PNGs named like frames that were there before the first run, or that the stamp does not claim, are the user's."""
    frames_out = tmp_path / 'frames'
    frames_out.mkdir()
    own = {name: noise((4, 4, 3), seed=i) for i, name in enumerate(['00000000.png', '00000003.png', '00000099.png'])}
    for name, img in own.items():
        cv2.imwrite(str(frames_out / name), img)
    before = {name: (frames_out / name).read_bytes() for name in own}
    with pytest.raises(UserError) as err:
        restore(Nearest(), clip, tmp_path / 'a.mp4', frames_out=frames_out, progress=False)
    assert_one_line_error(str(err.value), f'{frames_out}: 00000000.png and 2 more were not written by cnlrn infer')
    assert {name: (frames_out / name).read_bytes() for name in own} == before
    assert sorted(os.listdir(tmp_path)) == ['frames']

    # a folder of this project's frames: those the stamp claims go when the input changes, the others stay
    ours = tmp_path / 'ours'
    restore(Nearest(), clip, tmp_path / 'a.mp4', frames_out=ours, progress=False)
    (ours / 'notes.txt').write_text('mine')
    claimed = sorted(os.listdir(ours))
    other = tmp_path / 'other.mp4'
    make_demo_clip(other, frames=3, size=SIZE, seed=1)
    restore(Nearest(), other, tmp_path / 'b.mp4', frames_out=ours, progress=False)
    assert sorted(os.listdir(ours)) == [FRAMES_STAMP, '00000000.png', '00000001.png', '00000002.png', 'notes.txt']
    assert len(claimed) == FRAMES + 2
    cv2.imwrite(str(ours / '00000005.png'), own['00000000.png'])  # beyond the 3 frames the stamp now claims
    with pytest.raises(UserError, match='00000005.png were not written by cnlrn infer'):
        restore(Nearest(), clip, tmp_path / 'c.mp4', frames_out=ours, progress=False)
    assert (ours / '00000005.png').is_file() and (ours / 'notes.txt').read_text() == 'mine'


def test_an_input_changed_since_the_frames_were_restored_is_restored_again(model, clip, tmp_path):
    """Same path and size, another modification time: the frames in --frames-out may be of the old content."""
    changed = tmp_path / 'clip.mp4'
    changed.write_bytes(clip.read_bytes())
    frames_out = tmp_path / 'frames'
    restore(Nearest(), changed, tmp_path / 'a.mp4', frames_out=frames_out, progress=False)
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    counted = InterruptAfter(Nearest())
    restore(counted, changed, tmp_path / 'b.mp4', frames_out=frames_out, progress=False)
    assert counted.calls == FRAMES


def test_every_decoded_frame_is_checked_against_max_pixels_before_the_network_sees_it(model, tmp_path, capsys):
    clip = tmp_path / 'grows.mkv'  # FFmpeg finds the raw stream whatever the name says
    clip.write_bytes(raw_h264([(16, 12), (32, 24), (16, 12)]))
    counted = InterruptAfter(Nearest())
    with pytest.raises(UserError) as err:
        restore(counted, clip, tmp_path / 'x.mp4', batch=1, progress=False, max_pixels=16 * 12)
    assert_one_line_error(str(err.value), f'{clip}: frame 1 is 32x24, 768 pixels, over the limit of 192')
    assert counted.calls == 1 and not (tmp_path / 'x.mp4').exists()

    argv = ['-i', clip, '-o', tmp_path / 'out', '--weights', model['weights'], '--opt', model['opt']]
    assert infer(*argv, '--max-pixels', 16 * 12) == 1
    stderr = capsys.readouterr().err
    assert f'skipped {clip}: frame 1 is 32x24, 768 pixels, over the limit of 192' in stderr
    assert '--tile' not in stderr  # tiles would restore it anyway


def test_a_video_after_one_that_is_restored_is_checked_frame_by_frame_as_it_is_restored(model, tmp_path, capsys):
    """cnlrn infer's pre-check stops at the first video it would restore; the restoring loop checks the rest."""
    clips = tmp_path / 'clips'
    clips.mkdir()
    (clips / 'a_steady.mkv').write_bytes(raw_h264([(16, 12), (16, 12)]))
    (clips / 'b_grows.mkv').write_bytes(raw_h264([(16, 12), (32, 24), (16, 12)]))
    argv = ['-i', clips, '-o', tmp_path / 'out', '--weights', model['weights'], '--opt', model['opt']]
    assert infer(*argv, '--max-pixels', 16 * 12) == 1
    stderr = capsys.readouterr().err
    assert f'skipped {clips / "b_grows.mkv"}: frame 1 is 32x24, 768 pixels, over the limit of 192' in stderr
    assert sorted(os.listdir(tmp_path / 'out')) == ['a_steady_cnlrn.mp4']


def test_max_frames_counts_the_decoded_frames_and_the_announced_count_is_not_trusted(clip, tmp_path):
    assert restore(Nearest(), clip, tmp_path / 'at.mp4', progress=False, max_frames=FRAMES) == FRAMES
    counted = InterruptAfter(Nearest())
    with pytest.raises(UserError) as err:
        restore(counted, clip, tmp_path / 'over.mp4', batch=1, progress=False, max_frames=FRAMES - 1)
    assert_one_line_error(str(err.value), f'{clip}: more than {FRAMES - 1} frames, over the limit of {FRAMES - 1}')
    assert counted.calls == FRAMES - 1 and not (tmp_path / 'over.mp4').exists()

    # AVI counts the empty chunks that stand for frames without data: 24 announced, 6 in the file
    avi = tmp_path / 'sparse.avi'
    make_demo_clip(avi, frames=6, size=SIZE, video_codec='mpeg4', audio_codec=None)
    with av.open(str(avi)) as container:
        assert container.streams.video[0].frames == 24
    assert restore(Nearest(), avi, tmp_path / 'avi.mp4', progress=False, max_frames=6) == 6
    assert len(decoded_frames(tmp_path / 'avi.mp4')[0]) == 6


def test_the_temporary_video_is_fsynced_before_it_is_renamed(clip, tmp_path, monkeypatch):
    """Without the fsync a crash after the rename may leave an empty or partial file under the final name."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', os.readlink(f'/proc/self/fd/{fd}')))
        real_fsync(fd)

    def replace(src, dst):
        events.append(('replace', os.fspath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    restore(Nearest(), clip, tmp_path / 'out.mp4', progress=False)
    (renamed,) = [path for kind, path in events if kind == 'replace']
    assert os.path.basename(renamed).startswith('.out.mp4.tmp')
    assert events.index(('fsync', renamed)) < events.index(('replace', renamed))
    assert events[-1] == ('fsync', str(tmp_path))  # the rename itself


def test_tiles_and_batches_compose(model, clip, tmp_path):
    """A batch of whole frames would be cut into tiles after the network ran: with tiles, frames go one by one."""
    tiles = InferenceSettings(tile=8, tile_pad=2)
    restore(model['net'], clip, tmp_path / 'one.mp4', tiles, lossless=True, progress=False)
    restore(model['net'], clip, tmp_path / 'two.mp4', tiles, lossless=True, progress=False, batch=2)
    one, two = decoded_frames(tmp_path / 'one.mp4')[0], decoded_frames(tmp_path / 'two.mp4')[0]
    assert len(two) == FRAMES
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_outputs_never_replace_an_input_or_a_file_cnlrn_infer_did_not_write(model, tmp_path, capsys):
    folder = tmp_path / 'videos'
    folder.mkdir()
    make_demo_clip(folder / 'clip.mkv', frames=2, size=SIZE)  # AAC: restored into clip.mp4
    make_demo_clip(folder / 'clip.mp4', frames=3, size=SIZE, seed=1)  # another video, the user's
    user_video = (folder / 'clip.mp4').read_bytes()
    common = ['-o', folder, '--suffix', '', '--weights', model['weights'], '--opt', model['opt']]

    assert infer('-i', folder / 'clip.mkv', *common) == 1
    refusal = f'{folder / "clip.mp4"} exists and was not written by cnlrn infer; choose another -o or --suffix, or pass'
    assert f'{refusal} --overwrite to replace it' in capsys.readouterr().err
    assert (folder / 'clip.mp4').read_bytes() == user_video
    assert infer('-i', folder / 'clip.mp4', *common) == 1  # its output would be itself
    assert 'would overwrite the input' in capsys.readouterr().err
    assert (folder / 'clip.mp4').read_bytes() == user_video

    assert infer('-i', folder / 'clip.mkv', *common, '--overwrite') == 0
    assert len(decoded_frames(folder / 'clip.mp4')[0]) == 2
    assert infer('-i', folder / 'clip.mkv', *common) == 0  # its own output of the run before: replaced
