"""cnlrn serve without a browser: the page's jobs give cnlrn infer's pixels; limits, messages, examples, the folder."""

import asyncio
import os
import shutil
import socket

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from cnlrn_arch.data_prep.demo_clip import make_demo_clip
from cnlrn_arch.data_prep.demo_data import make_demo_data
from cnlrn_arch.inference.image_io import UserImage
from cnlrn_arch.web.app import DownloadWatch, check_port_free, launch_options, weights_label
from cnlrn_arch.web.jobs import (
    MB,
    Restorer,
    ServerFiles,
    bicubic,
    run_job,
    server_paths_hidden,
    serving_folder,
    write_examples,
)
from cnlrn_base.errors import UserError
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.main import main
from tests.helpers import tiny_infer_output


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


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
    # a second name of the shown picture: fetching the download is told apart from showing the picture
    assert result.restored != result.download and os.path.samefile(result.restored, result.download)
    assert os.path.basename(result.download) == 'x_cnlrn.png'
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


def test_serving_folder_removed_on_leaving(monkeypatch):
    monkeypatch.delenv('GRADIO_TEMP_DIR', raising=False)
    with pytest.raises(KeyboardInterrupt), serving_folder() as folder:
        assert os.environ['GRADIO_TEMP_DIR'].startswith(folder)
        open(os.path.join(folder, 'result.png'), 'wb').close()
        raise KeyboardInterrupt
    assert not os.path.exists(folder)
    assert 'GRADIO_TEMP_DIR' not in os.environ


@pytest.mark.parametrize(
    'host, warned', [('127.0.0.1', False), ('localhost', False), ('::1', False), ('0.0.0.0', True), ('pc.lan', True)]
)
def test_serve_warns_off_loopback(monkeypatch, capsys, host, warned):
    served = []
    monkeypatch.setattr('cnlrn_arch.web.app.serve', lambda *args: served.append(args))
    assert main(['serve', '--host', host, '--port', '8000', '--max-temp-mb', '7', '--job-minutes', '3']) == 0
    assert served[0][2:4] == (host, 8000)
    limits = served[0][5]
    assert (limits.max_temp_mb, limits.job_minutes, limits.keep_minutes) == (7, 3, 30)
    stderr = capsys.readouterr().err
    assert (f'cnlrn serve: warning: listening on {host}' in stderr) == warned


def test_wrong_type_refused_in_one_line(restorer, tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not a picture')
    with pytest.raises(UserError, match=r'^notes.txt: not an image or a clip this page restores [^\n/]*$'):
        restorer.restore(str(notes), str(tmp_path))


def test_job_stops_at_its_time_limit_and_when_the_server_stops(restorer, infer_setup, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(restorer, 'job_seconds', -1)
    for upload in (infer_setup / 'x.png', clip):
        with pytest.raises(UserError, match=rf'^{upload.name}: stopped at the time limit of -0.0166667 minutes'):
            restorer.restore(str(upload), str(tmp_path))
    monkeypatch.setattr(restorer, 'job_seconds', 60)
    restorer.stopping.set()
    try:
        with pytest.raises(UserError, match=r'^x.png: stopped, the server is stopping$'):
            restorer.restore(str(infer_setup / 'x.png'), str(tmp_path))
    finally:
        restorer.stopping.clear()


def test_server_paths_hidden_from_messages(tmp_path):
    job = tmp_path / 'uploads' / 'job-1'
    upload = tmp_path / 'uploads' / '3f9a' / 'clip.mkv'
    message = (
        f'{upload}: frame 3 restored is 64x48, unlike the frames before it; '
        f'{job}/clip_cnlrn_frames/00000003.png is from another run: remove its folder'
    )
    hidden = server_paths_hidden(message, str(upload), str(job))
    assert hidden == (
        'clip.mkv: frame 3 restored is 64x48, unlike the frames before it; '
        '00000003.png is from another run: remove its folder'
    )


def raw_h264(path, sizes):
    """A raw H.264 stream (no frame count in any header) of 2 black frames of each (width, height) in turn."""
    av = pytest.importorskip('av')
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for size in sizes:
        part = path.with_suffix(f'.{size[0]}.h264')
        with av.open(str(part), 'w', format='h264') as container:
            stream = container.add_stream('libx264', rate=5)
            stream.width, stream.height, stream.pix_fmt = *size, 'yuv420p'
            for _ in range(2):
                frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), format='rgb24')
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        parts.append(part.read_bytes())
    path.write_bytes(b''.join(parts))
    return path


def test_clip_whose_frame_size_changes_names_no_server_path(restorer, tmp_path):
    """Two raw H.264 streams of different sizes, one after the other, in a file named .mkv."""
    upload = raw_h264(tmp_path / 'server' / 'uploads' / '3f9a' / 'clip.mkv', ((16, 12), (32, 24)))
    job = tmp_path / 'server' / 'uploads' / 'job-1'
    job.mkdir()
    with pytest.raises(UserError) as err:
        restorer.restore(str(upload), str(job))
    message = str(err.value)
    assert message.startswith('clip.mkv: ') and str(tmp_path) not in message and '\n' not in message
    assert message.endswith('unlike the frames before it; videos must keep their frame size')


def test_max_frames_counted_where_no_header_says_how_many(restorer, tmp_path, monkeypatch):
    """A raw H.264 stream named .mkv announces no frame count: 2,723 of 3,000 frames were restored."""
    upload = raw_h264(tmp_path / 'uploads' / 'clip.mkv', ((16, 12), (16, 12)))
    monkeypatch.setattr(restorer, 'max_frames', 3)
    with pytest.raises(UserError, match='more than 3 frames, over the limit of 3'):
        restorer.restore(str(upload), str(tmp_path / 'job'))


def entry(uploads, name, size, mtime):
    """A Gradio-like upload ``uploads/<name>/file.png`` of ``size`` bytes last changed at ``mtime``."""
    folder = uploads / name
    folder.mkdir()
    (folder / 'file.png').write_bytes(bytes(size))
    for path in (folder / 'file.png', folder):
        os.utime(path, (mtime, mtime))
    return folder


def test_files_removed_after_the_time_limit_the_examples_and_running_jobs_kept(tmp_path):
    files = ServerFiles(str(tmp_path / 'uploads'), keep_seconds=60, max_bytes=10 * MB)
    fresh, examples = (entry(tmp_path / 'uploads', name, 10, 1000) for name in ('fresh', 'examples'))
    entry(tmp_path / 'uploads', 'old', 10, 1000)
    os.utime(fresh / 'file.png', (1990, 1990))
    files.kept.add(str(examples))
    assert files.sweep(now=2000) == 20
    assert sorted(os.listdir(tmp_path / 'uploads')) == ['examples', 'fresh']
    job = files.start(str(fresh / 'file.png'))  # sweeps by the real time: all is old but the upload and examples
    os.utime(job, (1000, 1000))
    assert files.sweep(now=1e10) == 20  # the running job's folder is empty
    assert sorted(os.listdir(tmp_path / 'uploads')) == sorted(['fresh', 'examples', os.path.basename(job)])
    files.finish(job, None)  # a job that failed: its folder goes at once
    assert not os.path.exists(job) and files.idle()


def test_oldest_files_removed_over_the_size_limit_and_jobs_refused_while_full(tmp_path):
    uploads = tmp_path / 'uploads'
    files = ServerFiles(str(uploads), keep_seconds=1e10, max_bytes=MB)
    oldest, middle = entry(uploads, 'oldest', MB // 2, 1000), entry(uploads, 'middle', MB // 2, 1001)
    newest = entry(uploads, 'newest', MB // 2, 1002)
    job = files.start(str(newest / 'file.png'))
    assert not oldest.exists() and middle.exists() and newest.exists()  # 1 MB left
    (uploads / job / 'result.png').write_bytes(bytes(MB))  # the running job's files are never removed
    with pytest.raises(UserError, match=r"^the server's temporary folder is full \(2 MB of 1 MB\): try again"):
        files.start(str(middle / 'file.png'))
    assert middle.exists()  # kept for the next try
    with pytest.raises(UserError, match=r'^file.png: removed from the server after its result was downloaded or'):
        files.start(str(oldest / 'file.png'))


def test_files_outside_the_uploads_refused(tmp_path):
    files = ServerFiles(str(tmp_path / 'uploads'), keep_seconds=60, max_bytes=MB)
    (tmp_path / 'w.pth').write_bytes(b'weights')
    for path in (tmp_path / 'w.pth', tmp_path / 'uploads' / '..' / 'w.pth', tmp_path / 'uploads'):
        with pytest.raises(UserError, match=rf'^{path.name}: not a file uploaded to this page$'):
            files.start(str(path))
    os.symlink(tmp_path / 'w.pth', tmp_path / 'uploads' / 'link.png')
    with pytest.raises(UserError, match=r'^link.png: not a file uploaded to this page$'):
        files.start(str(tmp_path / 'uploads' / 'link.png'))


def test_a_downloaded_result_removes_its_job_and_upload(restorer, infer_setup, tmp_path):
    uploads = tmp_path / 'uploads'
    files = ServerFiles(str(uploads), keep_seconds=60, max_bytes=10 * MB)
    (uploads / '3f9a').mkdir()
    upload = shutil.copy(infer_setup / 'x.png', uploads / '3f9a' / 'x.png')
    result = run_job(restorer, files, str(upload))
    job = os.path.dirname(result.bicubic)
    assert os.path.dirname(job) == str(uploads) and files.idle()
    files.downloaded(result.restored)  # the picture shown on the page: kept
    files.downloaded(result.bicubic)
    assert os.path.exists(result.download) and upload.exists()
    files.downloaded(result.download)
    assert os.listdir(uploads) == []


def test_download_watch_reports_files_sent_in_full():
    reported = []

    class Files:
        def downloaded(self, path):
            reported.append(path)

    def app(status, more_body=False):
        async def respond(scope, receive, send):
            await send({'type': 'http.response.start', 'status': status})
            await send({'type': 'http.response.body', 'body': b'png', 'more_body': more_body})

        return respond

    async def nothing(message):
        pass

    def get(path, status=200, method='GET', more_body=False):
        scope = {'type': 'http', 'method': method, 'path': path}
        asyncio.run(DownloadWatch(app(status, more_body), Files())(scope, None, nothing))

    get('/gradio_api/file=/tmp/s/uploads/job-1/download/x_cnlrn.png')
    get('/gradio_api/file=/tmp/s/uploads/job-1/x_bicubic.png', status=404)
    get('/gradio_api/file=/tmp/s/uploads/job-1/x_bicubic.png', more_body=True)  # the client left mid-way
    get('/gradio_api/file=/tmp/s/uploads/job-1/x_bicubic.png', method='HEAD')
    get('/gradio_api/upload')
    assert reported == ['/tmp/s/uploads/job-1/download/x_cnlrn.png']


def test_launch_takes_the_upload_limit_in_megabytes_and_serves_only_examples(tmp_path):
    files = ServerFiles(str(tmp_path / 'uploads'), keep_seconds=60, max_bytes=MB)
    options = launch_options('127.0.0.1', 7860, 3, str(tmp_path / 'examples'), files)
    assert options['max_file_size'] == 3 * 1024 * 1024  # bytes, as Gradio takes an int
    assert options['allowed_paths'] == [str(tmp_path / 'examples')]


def test_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf'^cannot listen on 127.0.0.1 port {port}: Address already in use;'):
            check_port_free('127.0.0.1', port)
        assert main(['serve', '--port', str(port)]) == 2
    assert capsys.readouterr().err == (
        f'cnlrn serve: error: cannot listen on 127.0.0.1 port {port}: Address already in use; --port picks another\n'
    )
    check_port_free('127.0.0.1', port)  # free again


def test_page_names_the_weights_by_file_name(tmp_path):
    shipped = weights_label(DEMO_CHECKPOINT)
    assert shipped == 'CNLRN_demo.pth, the shipped demo checkpoint, trained on the embedded demo data'
    assert weights_label(str(tmp_path / 'mine.pth')) == 'mine.pth'


def test_page_shows_the_weights_and_leaves_file_types_to_the_job(restorer, infer_setup, tmp_path):
    gr = pytest.importorskip('gradio')
    from cnlrn_arch.web.app import build_page

    files = ServerFiles(str(tmp_path / 'uploads'), keep_seconds=60, max_bytes=MB)
    page = build_page(gr, restorer, files, [])
    by_id = {block.elem_id: block for block in page.blocks.values() if getattr(block, 'elem_id', None)}
    intro = by_id['intro'].value
    assert 'Weights: w.pth.' in intro and str(infer_setup) not in intro
    # Gradio's own check of file types prints a traceback in the server's log; the job refuses in one line
    assert by_id['upload'].file_types is None


def test_outscale_and_ext_give_the_page_s_results_their_size_and_type(infer_setup, clip, tmp_path):
    small = Restorer(infer_setup / 'w.pth', infer_setup / 'tiny.yml', 'cpu', outscale=2, ext='jpg')
    (tmp_path / 'image').mkdir()
    (tmp_path / 'clip').mkdir()
    result = small.restore(str(infer_setup / 'x.png'), str(tmp_path / 'image'))
    assert os.path.basename(result.download) == 'x_cnlrn.jpg'
    with Image.open(result.download) as jpg:
        assert (jpg.format, jpg.size) == ('JPEG', (40, 24))  # the 12x20 input x2
    assert read(result.bicubic).shape == (24, 40, 3)
    clip_result = small.restore(str(clip), str(tmp_path / 'clip'))
    with av.open(clip_result.download) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (32, 24)  # 16x12 x2
    gr = pytest.importorskip('gradio')
    from cnlrn_arch.web.app import build_page

    page = build_page(gr, small, ServerFiles(str(tmp_path / 'uploads'), keep_seconds=60, max_bytes=MB), [])
    intro = next(block.value for block in page.blocks.values() if getattr(block, 'elem_id', None) == 'intro')
    assert "Results: x2 the upload's size; images as JPG" in intro
