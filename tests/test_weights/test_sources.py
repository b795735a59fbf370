"""``--weights`` by path, name or URL: downloads from a local HTTP server into the cache, checked or refused."""

import hashlib
import http.server
import os
import threading
from pathlib import Path

import cv2
import pytest

from cnlrn_arch.weights import sources
from cnlrn_arch.weights.sources import ModelEntry, cache_dir, resolve_weights
from cnlrn_base.errors import UserError
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.main import main
from tests.helpers import infer, noise

BODY = bytes(range(256)) * 40  # 10 240 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    """The routes of :func:`server`; ``self.server.gets`` counts GET requests by path."""

    def do_GET(self):  # noqa: N802  (http.server's name)
        with self.server.count_lock:
            self.server.gets[self.path] = self.server.gets.get(self.path, 0) + 1
        if self.path == '/missing.pth':
            self.send_error(404)
            return
        if self.path == '/moved.pth':
            self.send_response(302)
            self.send_header('Location', '/w.pth')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        size = os.path.getsize(DEMO_CHECKPOINT) if self.path == '/CNLRN_demo.pth' else len(BODY)
        self.send_header('Content-Length', str(size))
        self.end_headers()
        if self.path == '/truncated.pth':
            self.wfile.write(BODY[:1000])
            self.close_connection = True
        elif self.path == '/CNLRN_demo.pth':
            self.wfile.write(Path(DEMO_CHECKPOINT).read_bytes())
        elif self.path == '/stalled.pth':
            self.wfile.write(BODY[:1000])
            self.wfile.flush()
            self.server.release.wait(30)  # sends nothing more until the test is over
        else:
            self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A threading HTTP server on 127.0.0.1 (a free port); yields its base URL and the server."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    httpd.gets, httpd.count_lock, httpd.release = {}, threading.Lock(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('CNLRN_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def cached_files(cache):
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith('.lock')) if cache.exists() else []


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    assert cache_dir() == str(tmp_path / 'cache')
    monkeypatch.delenv('CNLRN_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cache_dir() == str(tmp_path / 'xdg' / 'cnlrn')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert cache_dir() == str(tmp_path / 'home' / '.cache' / 'cnlrn')


def test_paths_and_the_shipped_name(tmp_path):
    (tmp_path / 'demo').write_bytes(b'x')
    assert resolve_weights(str(tmp_path / 'demo')) == str(tmp_path / 'demo')
    assert resolve_weights('no/such/file.pth') == 'no/such/file.pth'  # reading it names the missing file
    assert resolve_weights('demo') == DEMO_CHECKPOINT


def test_name_on_a_browser_host_says_where_to_put_it(cache):
    with pytest.raises(UserError) as err:
        resolve_weights('CNLRN')
    message = str(err.value)
    print(message)
    assert 'needs a browser' in message and sources.MODELS['CNLRN'].page in message
    assert str(cache / 'CNLRN.pth') in message and '\n' not in message
    cache.mkdir()
    (cache / 'CNLRN.pth').write_bytes(b'weights')
    assert resolve_weights('CNLRN') == str(cache / 'CNLRN.pth')


def test_download_once_then_from_the_cache(server, cache):
    base, httpd = server
    path = resolve_weights(f'{base}/w.pth')
    assert Path(path).read_bytes() == BODY and path.endswith('-w.pth') and os.path.dirname(path) == str(cache)
    assert resolve_weights(f'{base}/w.pth') == path
    assert httpd.gets == {'/w.pth': 1}


def test_redirect_is_followed(server):
    base, httpd = server
    path = resolve_weights(f'{base}/moved.pth')
    assert Path(path).read_bytes() == BODY and path.endswith('-moved.pth')
    assert httpd.gets == {'/moved.pth': 1, '/w.pth': 1}


@pytest.mark.parametrize(
    'route, fragment',
    [
        ('/truncated.pth', 'truncated: 1000 of 10240 bytes received; refused, nothing kept'),
        ('/missing.pth', 'download failed: HTTP 404 Not Found'),
        ('/stalled.pth', 'download failed: nothing received for 0.5 s; nothing kept'),
    ],
    ids=['truncated', '404', 'stalled'],
)
def test_failed_download_is_one_line_and_leaves_nothing(server, cache, route, fragment):
    base, _ = server
    with pytest.raises(UserError) as err:
        resolve_weights(f'{base}{route}', timeout_s=0.5)
    print(err.value)
    assert str(err.value) == f'{base}{route}: {fragment}'
    assert cached_files(cache) == []


def test_size_limit(server, cache):
    base, _ = server
    with pytest.raises(UserError, match=r'10240 bytes, over the limit of 4096: refused$'):
        resolve_weights(f'{base}/w.pth', max_bytes=4096)
    assert cached_files(cache) == []


def test_named_download_with_a_wrong_hash_is_refused(server, cache, monkeypatch):
    base, _ = server
    monkeypatch.setitem(
        sources.MODELS, 'test', ModelEntry('a test model', 'test.pth', url=f'{base}/w.pth', sha256='0' * 64)
    )
    with pytest.raises(UserError) as err:
        resolve_weights('test')
    print(err.value)
    assert str(err.value).startswith(f'{base}/w.pth: corrupt: sha256 ') and str(err.value).endswith('nothing kept')
    assert cached_files(cache) == []


def test_corrupt_cached_file_and_leftovers_are_replaced(server, cache, monkeypatch):
    """A cached file whose hash is wrong is downloaded again; a killed download's temporary file is removed."""
    base, httpd = server
    digest = hashlib.sha256(BODY).hexdigest()
    monkeypatch.setitem(
        sources.MODELS, 'test', ModelEntry('a test model', 'test.pth', url=f'{base}/w.pth', sha256=digest)
    )
    cache.mkdir()
    (cache / 'test.pth').write_bytes(BODY[:-1] + b'!')
    (cache / '.test.pth.tmp99999').write_bytes(BODY[:10])
    assert resolve_weights('test') == str(cache / 'test.pth')
    assert (cache / 'test.pth').read_bytes() == BODY and cached_files(cache) == ['test.pth']
    assert httpd.gets == {'/w.pth': 1}


def test_two_downloads_of_one_file_at_once(server, cache):
    """The second waits on the lock, then takes the first's file: one request, one complete file."""
    base, httpd = server
    results, errors = [], []

    def fetch():
        try:
            results.append(resolve_weights(f'{base}/w.pth'))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert Path(results[0]).read_bytes() == BODY and httpd.gets == {'/w.pth': 1}


def test_other_url_schemes_are_refused():
    with pytest.raises(UserError, match=r'^ftp://host/w.pth: only http and https URLs are downloaded$'):
        resolve_weights('ftp://host/w.pth')


def test_commands_take_a_url_and_a_name(server, tmp_path, capsys):
    """cnlrn infer downloads --weights URL into the cache; cnlrn export reads --weights demo (the shipped file)."""
    base, httpd = server
    cv2.imwrite(str(tmp_path / 'in.png'), noise((8, 8, 3)))
    assert infer('-i', tmp_path / 'in.png', '-o', tmp_path / 'out', '--weights', f'{base}/CNLRN_demo.pth') == 0
    assert (tmp_path / 'out' / 'in_cnlrn.png').is_file() and httpd.gets == {'/CNLRN_demo.pth': 1}
    assert main(['export', '--weights', 'demo', '--safetensors', str(tmp_path / 'demo.safetensors')]) == 0
    assert 'wrote' in capsys.readouterr().out
