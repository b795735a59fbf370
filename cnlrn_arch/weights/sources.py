"""Weights given by path, by http(s) URL or by name (:data:`MODELS`): :func:`resolve_weights` gives a local file.

Downloads go to the cache folder (:func:`cache_dir`: ``$CNLRN_CACHE``, else ``$XDG_CACHE_HOME/cnlrn``, else
``~/.cache/cnlrn``) and are used only once complete and checked:

* the body is written under a temporary name and renamed when whole (:func:`~cnlrn_base.atomic.atomic_write`);
  a body shorter than its ``Content-Length`` or the entry's size, or whose SHA-256 differs from the entry's,
  is refused in one line and removed;
* a size limit and a timeout (per read: the server sending nothing) bound each download;
* one process at a time downloads a file (a lock beside it): the others wait, then take the cached file;
* a download killed before its rename leaves a temporary file, removed when the next download starts afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import posixpath
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO, NamedTuple

from tqdm import tqdm

from cnlrn_base.atomic import atomic_write
from cnlrn_base.errors import UserError, first_line
from cnlrn_base.project import DEMO_CHECKPOINT

CACHE_ENV = 'CNLRN_CACHE'
URL_SCHEMES = ('http', 'https')
# far above any network this project builds: a larger body is not its weights
MAX_DOWNLOAD_BYTES = 2 << 30
# seconds a server may send nothing (connecting included) before the download is abandoned
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20


class ModelEntry(NamedTuple):
    """A model that ``--weights NAME`` selects.

    Attributes:
        description (str): what it is, in a few words.
        file_name (str): its file in the cache folder (or the shipped file's path, for ``path``).
        path (str | None): a file shipped with the package; None for the others.
        url (str | None): where it downloads from; None where the host needs a browser (see ``page``).
        page (str | None): the page a person downloads it from, where there is no ``url``.
        sha256 (str | None): its SHA-256 (hex) where known.
        size (int | None): its size in bytes where known.
    """

    description: str
    file_name: str
    path: str | None = None
    url: str | None = None
    page: str | None = None
    sha256: str | None = None
    size: int | None = None


MODELS = {
    'demo': ModelEntry(
        'the shipped demo checkpoint, trained on the embedded demo data',
        os.path.basename(DEMO_CHECKPOINT),
        path=DEMO_CHECKPOINT,
    ),
    # github.com/csbhr/CNLRN links a Google Drive folder ("Pretrained models are available [Here]"), whose files
    # need a browser to download; their size and hash could not be read from here
    'CNLRN': ModelEntry(
        "the authors' released CNLRN (x4, trained on REDS)",
        'CNLRN.pth',
        page='https://drive.google.com/drive/folders/1-JDSZvyQ8wzx5yLou4IEa6TWfQq1dymW',
    ),
}


def known_description(path: str) -> str | None:
    """What :data:`MODELS` says of the local file ``path`` (e.g. the shipped demo checkpoint), or None."""
    for entry in MODELS.values():
        if entry.path is not None and os.path.realpath(path) == os.path.realpath(entry.path):
            return entry.description
    return None


def cache_dir() -> str:
    """The folder downloads go to: ``$CNLRN_CACHE``, else ``$XDG_CACHE_HOME/cnlrn``, else ``~/.cache/cnlrn``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'cnlrn')


def resolve_weights(spec: str, timeout_s: float = DOWNLOAD_TIMEOUT_S, max_bytes: int = MAX_DOWNLOAD_BYTES) -> str:
    """The local file of ``--weights spec``: a path as given, a URL or a name of :data:`MODELS` downloaded once.

    Args:
        spec (str): a path (an existing file wins over a name), an http(s) URL or a key of :data:`MODELS`.
        timeout_s (float): seconds a server may send nothing before a download is abandoned.
        max_bytes (int): the largest download accepted.

    Raises:
        UserError: one line naming the URL or the name: another URL scheme, a download that failed or
            was refused (its reason), or a model whose host needs a browser and is not in the cache yet.
    """
    spec = os.fspath(spec)
    if os.path.exists(spec):
        return spec
    scheme = urllib.parse.urlsplit(spec).scheme
    if scheme in URL_SCHEMES:
        return _cached(spec, _url_file_name(spec), None, None, timeout_s, max_bytes)
    if '://' in spec:
        raise UserError(f'{spec}: only http and https URLs are downloaded')
    entry = MODELS.get(spec)
    if entry is None:
        return spec  # a path: reading it names a missing file
    if entry.path:
        return entry.path
    if entry.url:
        return _cached(entry.url, entry.file_name, entry.sha256, entry.size, timeout_s, max_bytes)
    path = os.path.join(cache_dir(), entry.file_name)
    if os.path.isfile(path):
        return path
    raise UserError(
        f'{spec}: {entry.description} is on a host that needs a browser: download {entry.file_name} '
        f'from {entry.page} to {path} (or pass --weights with its path)'
    )


def _url_file_name(url: str) -> str:
    """A cache file name for ``url``: its last path segment (the suffix says the format) after a hash of the URL."""
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) or 'weights'
    return f'{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}'


def _cached(url: str, file_name: str, sha256: str | None, size: int | None, timeout_s: float, max_bytes: int) -> str:
    """The cache's ``file_name``, downloaded from ``url`` unless a checked copy is there."""
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create the weights cache {folder}: {err.strerror} (set ${CACHE_ENV})') from None
    path = os.path.join(folder, file_name)
    with _exclusive(os.path.join(folder, f'.{file_name}.lock')):
        if os.path.isfile(path) and (sha256 is None or _file_sha256(path) == sha256):
            return path
        _remove_leftovers(folder, file_name)
        download(url, path, sha256, size, timeout_s, max_bytes)
    return path


def download(
    url: str,
    path: str,
    sha256: str | None = None,
    size: int | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> None:
    """Download ``url`` to ``path`` (written whole or not at all), with a progress bar on a terminal.

    Args:
        url (str): an http(s) URL; redirects are followed.
        path (str): the file to write.
        sha256 (str | None): the body's expected SHA-256 (hex), if known.
        size (int | None): the body's expected size in bytes, if known.
        timeout_s (float): seconds the server may send nothing.
        max_bytes (int): the largest body accepted.

    Raises:
        UserError: one line naming ``url``: HTTP error, unreachable host, timeout, too large, truncated,
            wrong size or wrong hash; ``path`` is not written then.
    """
    print(f'downloading {url} to {path}', file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            length = response.headers.get('Content-Length')
            expected = int(length) if length and length.isdigit() else size
            if expected is not None and expected > max_bytes:
                raise UserError(f'{url}: {expected} bytes, over the limit of {max_bytes}: refused')
            atomic_write(path, lambda f: _receive(response, f, url, expected, size, sha256, max_bytes))
    except urllib.error.HTTPError as err:
        raise UserError(f'{url}: download failed: HTTP {err.code} {err.reason}') from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):  # while connecting
            raise UserError(f'{url}: download failed: no connection within {timeout_s:g} s') from None
        raise UserError(f'{url}: download failed: {first_line(err.reason)}') from None
    except TimeoutError:
        raise UserError(f'{url}: download failed: nothing received for {timeout_s:g} s; nothing kept') from None
    except (http.client.HTTPException, ConnectionError) as err:
        raise UserError(f'{url}: download failed: {type(err).__name__} {first_line(err)}; nothing kept') from None
    except OSError as err:
        raise UserError(f'{url}: download to {path} failed: {err.strerror or first_line(err)}') from None


def _receive(
    response: IO[bytes],
    f: IO[bytes],
    url: str,
    expected: int | None,
    size: int | None,
    sha256: str | None,
    max_bytes: int,
) -> None:
    """Copy ``response`` into ``f``, then refuse (``UserError``) a body of the wrong length or hash."""
    digest, received = hashlib.sha256(), 0
    name = os.path.basename(url)
    with tqdm(total=expected, unit='B', unit_scale=True, desc=name, disable=None, file=sys.stderr) as bar:
        while chunk := response.read(CHUNK_BYTES):
            received += len(chunk)
            if received > max_bytes:
                raise UserError(f'{url}: over the limit of {max_bytes} bytes: refused, nothing kept')
            digest.update(chunk)
            f.write(chunk)
            bar.update(len(chunk))
    if expected is not None and received != expected:
        raise UserError(f'{url}: truncated: {received} of {expected} bytes received; refused, nothing kept')
    if size is not None and received != size:
        raise UserError(f'{url}: {received} bytes, not the expected {size}; refused, nothing kept')
    if sha256 is not None and digest.hexdigest() != sha256:
        raise UserError(
            f'{url}: corrupt: sha256 {digest.hexdigest()[:16]}... is not the expected {sha256[:16]}...; '
            'refused, nothing kept'
        )


@contextlib.contextmanager
def _exclusive(lock_path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing), waiting for whoever holds it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the holder's download is bounded by its timeout and size limit
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_leftovers(folder: str, file_name: str) -> None:
    """Remove the temporary files of downloads of ``file_name`` killed before their rename (see atomic_write)."""
    prefix = f'.{file_name}.tmp'
    for leftover in os.listdir(folder):
        if leftover.startswith(prefix):
            os.remove(os.path.join(folder, leftover))


def _file_sha256(path: str) -> str:
    """The SHA-256 (hex) of the file ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
