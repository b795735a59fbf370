"""``cnlrn serve`` as a process: SIGTERM, idle or during a job, stops it in seconds, exit 0, its folder removed."""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

import cv2
import pytest

from tests.helpers import ENV, command, noise
from tests.test_web.test_jobs import free_port

pytestmark = pytest.mark.slow
pytest.importorskip('gradio')
# urllib without the environment's proxies: the server is on this machine
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_server(tmp_path, *flags):
    """``cnlrn serve`` on a free port with its temporary folder in tmp_path/tmp; its URL once it answers."""
    (tmp_path / 'tmp').mkdir()
    port = free_port()
    log = open(tmp_path / 'serve.log', 'w')  # noqa: SIM115 (closed by the caller's fixture)
    server = subprocess.Popen(
        [command('cnlrn'), 'serve', '--port', str(port), '--device', 'cpu', *flags],
        env=ENV | {'TMPDIR': str(tmp_path / 'tmp')},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with LOCAL.open(url, timeout=5):
                return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.fail(f'cnlrn serve did not answer:\n{(tmp_path / "serve.log").read_text()}')


def upload_and_restore(url, path):
    """Upload ``path`` through the page's API and start a self-ensemble job on it; return the job's event id."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n'
            'Content-Type: image/png\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f'\r\n--{boundary}--\r\n'.encode()
    )
    request = urllib.request.Request(
        f'{url}gradio_api/upload', body, {'Content-Type': f'multipart/form-data; boundary={boundary}'}
    )
    with LOCAL.open(request, timeout=30) as response:
        [stored] = json.load(response)
    payload = {'data': [{'path': stored, 'meta': {'_type': 'gradio.FileData'}}, 0, False, True]}
    request = urllib.request.Request(
        f'{url}gradio_api/call/restore', json.dumps(payload).encode(), {'Content-Type': 'application/json'}
    )
    with LOCAL.open(request, timeout=30) as response:
        return json.load(response)['event_id']


def stop(server):
    """SIGTERM ``server``; the seconds until it exited."""
    start = time.monotonic()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    return time.monotonic() - start


@pytest.mark.parametrize('busy', [False, True], ids=['idle', 'during-a-job'])
def test_sigterm_stops_the_job_and_removes_the_folder(tmp_path, busy):
    server, url = start_server(tmp_path)
    try:
        if busy:
            photo = tmp_path / 'photo.png'
            cv2.imwrite(str(photo), noise((192, 192, 3)))  # through the 8 flips on a CPU: many seconds
            upload_and_restore(url, photo)
            uploads = next((tmp_path / 'tmp').iterdir()) / 'uploads'
            deadline = time.monotonic() + 60
            while not any(p.name.startswith('job-') for p in uploads.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.1)
        seconds = stop(server)
    finally:
        server.kill()
        server.wait()
    log = (tmp_path / 'serve.log').read_text()
    print(f'stopped in {seconds:.1f} s')
    assert server.returncode == 0, log
    assert 'Traceback' not in log and 'terminate called' not in log, log
    assert 'cnlrn serve: stopped; its temporary folder is removed' in log
    assert os.listdir(tmp_path / 'tmp') == []
    assert seconds < 10  # 3 s or so; leeway for a loaded machine
