"""The ``cnlrn serve`` page, a Gradio app, and the server that shows it.

The page takes an uploaded image or clip and three options (tiles, half precision,
self-ensemble); it names the weights by their file name, and nothing on it names
a path on the server. Jobs run one at a time, queued (the page shows the queue
position), through :class:`~.jobs.Restorer`, the library ``cnlrn infer`` runs.
Uploads and results live in a temporary folder that :class:`~.jobs.ServerFiles`
bounds while the server runs and that is removed when it stops (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from cnlrn_arch.runtime.speed import slow_precision_note
from cnlrn_arch.web.jobs import MB, Restorer, ServeLimits, ServerFiles, run_job, serving_folder, write_examples
from cnlrn_arch.weights.sources import known_description
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import DEFAULT_EXT, DEFAULT_HOST, DEFAULT_PORT
from cnlrn_base.optional import import_optional

TITLE = 'CNLRN: 4x super-resolution of blurry photographs'
INTRO = """\
Upload a small, blurry photograph (PNG, JPEG, TIFF, WebP, BMP; 8- or 16-bit, with or without alpha)
or a short clip: it is deblurred and upscaled 4x as `cnlrn infer` does, and shown beside bicubic
upscaling (a clip's first frame; drag the slider, scroll over the picture to zoom). The result
downloads in full: an image (PNG in the input's mode unless the server chose otherwise, see below),
or the restored clip with its sound.
"""
# how often the server removes old files while it waits for a signal
SWEEP_SECONDS = 2.0
# how long a stopping server waits for the running job to stop at its next forward pass
STOP_SECONDS = 1.5
# the route Gradio serves files by; a GET of a job's download there, answered in full, removes the job's files
FILE_ROUTE = '/gradio_api/file='


def weights_label(source: str) -> str:
    """The weights named on the page: their file name, and for the shipped checkpoint what it was trained on."""
    name, known = os.path.basename(source), known_description(source)
    return f'{name}, {known}' if known else name


def output_label(restorer: Restorer) -> str:
    """The results' scale and image type, as ``cnlrn serve --outscale`` and ``--ext`` chose them."""
    scale = restorer.outscale or restorer.network.scale
    kind = "the upload's type (PNG, JPEG, WebP; others as PNG)" if restorer.ext == 'auto' else restorer.ext.upper()
    return f"Results: x{scale:g} the upload's size; images as {kind}"


def build_page(gr: ModuleType, restorer: Restorer, files: ServerFiles, examples: list[str]):
    """The page's Blocks, running jobs through ``restorer`` in folders of ``files``.

    Args:
        gr (ModuleType): the gradio module.
        restorer (Restorer): the loaded network and its settings.
        files (ServerFiles): the folder of uploads, where each job writes its files.
        examples (list[str]): files offered as one-click examples.
    """

    # Gradio hands a progress bar to the argument whose default is gr.Progress()
    def restore(upload, tile, half, ensemble, progress=gr.Progress()):  # noqa: B008
        if upload is None:
            raise gr.Error('Upload an image or a clip first.', print_exception=False)
        progress(0, desc='restoring')

        def report(done, total):
            progress((done, total), desc='restoring', unit='network passes')

        try:
            result = run_job(restorer, files, upload, int(tile or 0) or None, half, ensemble, report)
        except UserError as err:
            print(f'cnlrn serve: refused: {err}', file=sys.stderr, flush=True)  # one line in the log, no traceback
            raise gr.Error(str(err), title='Cannot restore this file', print_exception=False) from None
        return (result.bicubic, result.restored), result.download

    device_type = restorer.settings.device.type
    half_label = f'Half precision ({restorer.half} on {device_type})' if restorer.half else 'Half precision'
    slow = slow_precision_note(restorer.half, device_type)
    if slow:
        half_label += f': {slow}'
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        intro = f'{INTRO}\nWeights: {weights_label(restorer.network.source)}. {output_label(restorer)}.'
        gr.Markdown(f'# {TITLE}\n{intro}', elem_id='intro')
        with gr.Row():
            with gr.Column(scale=1):
                # no file_types: Gradio would refuse other files with a traceback in the log; the job refuses them
                # in one line
                upload = gr.File(
                    label='Blurry low-resolution image or clip',
                    type='filepath',
                    elem_id='upload',
                )
                tile = gr.Number(
                    label='Tile side in LR pixels (0: the whole image at once)',
                    value=0,
                    minimum=0,
                    precision=0,
                    elem_id='tile',
                )
                half = gr.Checkbox(label=half_label, interactive=restorer.half is not None, elem_id='half')
                ensemble = gr.Checkbox(label='Self-ensemble (8 flips/rotations: 8 times slower)', elem_id='ensemble')
                run = gr.Button('Restore', variant='primary', elem_id='restore')
                gr.Examples(examples, inputs=upload, label='Held-out demo photographs (blurry LR inputs), a clip')
            with gr.Column(scale=2):
                slider = gr.ImageSlider(
                    label='Bicubic | CNLRN', type='filepath', format='png', max_height=560, elem_id='slider'
                )
                download = gr.File(
                    label='Full-resolution result (PNG, or the clip)', interactive=False, elem_id='result'
                )
        run.click(restore, [upload, tile, half, ensemble], [slider, download], api_name='restore')
    return page


def launch_options(host: str, port: int, max_upload_mb: int, examples: str, files: ServerFiles) -> dict:
    """The keyword arguments of the page's ``launch``.

    Args:
        host (str): the address to listen on.
        port (int): the port.
        max_upload_mb (int): larger uploads are refused before they are stored.
        examples (str): the folder of the page's examples, the only files it serves outside uploads and results.
        files (ServerFiles): told when a job's download has been fetched.
    """
    from starlette.middleware import Middleware  # installed with gradio, which serve imports first

    return {
        'server_name': host,
        'server_port': port,
        'share': False,
        'ssr_mode': False,
        'max_file_size': max_upload_mb * MB,
        'allowed_paths': [examples],
        'quiet': True,
        'prevent_thread_lock': True,
        'app_kwargs': {'middleware': [Middleware(DownloadWatch, files=files)]},
    }


class DownloadWatch:
    """ASGI middleware: a file that Gradio's file route sent in full is reported to :meth:`ServerFiles.downloaded`."""

    def __init__(self, app, files: ServerFiles):
        self.app = app
        self.files = files

    async def __call__(self, scope, receive, send):
        path = scope.get('path', '')
        if scope['type'] != 'http' or scope.get('method') != 'GET' or not path.startswith(FILE_ROUTE):
            await self.app(scope, receive, send)
            return
        status, complete = None, False

        async def watched(message):
            nonlocal status, complete
            await send(message)
            if message['type'] == 'http.response.start':
                status = message['status']
            elif message['type'] == 'http.response.body' and not message.get('more_body', False):
                complete = status == 200

        await self.app(scope, receive, watched)
        if complete:
            self.files.downloaded(path[len(FILE_ROUTE) :])


def check_port_free(host: str, port: int) -> None:
    """Raise UserError in one line where ``port`` of ``host`` cannot be listened on (in use, or not this machine's)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            probe.bind(address)
    except OSError as err:
        raise UserError(f'cannot listen on {host} port {port}: {err.strerror or err}; --port picks another') from None


@contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Within it, SIGTERM and Ctrl-C (SIGINT) set ``stop`` instead of raising where the main thread happens to be."""
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def wait_until(condition, seconds: float) -> bool:
    """Whether ``condition()`` became true within ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def serve(
    weights: str,
    opt: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    device: str = 'auto',
    limits: ServeLimits = ServeLimits(),  # noqa: B008 (frozen)
    outscale: float | None = None,
    ext: str = DEFAULT_EXT,
) -> None:
    """Serve the page until Ctrl-C or SIGTERM; then stop the running job and remove the temporary folder.

    Args:
        weights (str): weights as ``cnlrn infer --weights`` takes them.
        opt (str | None): option file whose ``network_g`` gives the architecture.
        host (str): the address to listen on.
        port (int): the port.
        device (str): 'auto', 'cpu' or 'cuda'.
        limits (ServeLimits): what one upload may claim.
        outscale (float | None): results' size over the upload's (``cnlrn infer --outscale``); None: the network's.
        ext (str): the type of restored images (``cnlrn infer --ext``).

    Raises:
        UserError: where the port cannot be listened on (checked before the network is loaded).
    """
    check_port_free(host, port)
    stop = threading.Event()
    with stopped_by_signals(stop), serving_folder() as folder:
        os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # no usage reports or version checks over the network
        gr = import_optional('gradio', 'cnlrn serve')
        restorer = Restorer(
            weights, opt, device, limits.max_pixels, limits.max_frames, limits.job_minutes * 60, outscale, ext
        )
        files = ServerFiles(os.path.join(folder, 'uploads'), limits.keep_minutes * 60, limits.max_temp_mb * MB)
        # the examples live among the uploads, so Gradio serves them without a copy that would age away
        examples = os.path.join(files.uploads, 'examples')
        os.makedirs(examples)
        files.kept.add(examples)
        page = build_page(gr, restorer, files, write_examples(examples))
        page.queue(default_concurrency_limit=1)
        try:
            _, url, _ = page.launch(**launch_options(host, port, limits.max_upload_mb, examples, files))
        except OSError:  # taken since check_port_free
            raise UserError(f'cannot listen on {host} port {port}: in use; --port picks another') from None
        print(f'cnlrn serve: open {url} in a browser; Ctrl-C stops the server and removes its files', flush=True)
        while not stop.wait(SWEEP_SECONDS):
            files.sweep()
        restorer.stopping.set()
        job_stopped = wait_until(files.idle, STOP_SECONDS)
    print('cnlrn serve: stopped; its temporary folder is removed', flush=True)
    if not job_stopped:
        # the job is inside one forward pass, which Python cannot interrupt; ending the interpreter around it
        # aborts in C++, so the process ends here, its files already removed
        sys.stderr.flush()
        os._exit(0)
