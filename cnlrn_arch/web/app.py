"""The ``cnlrn serve`` page, a Gradio app, and the server that shows it.

The page takes an uploaded image or clip and three options (tiles, half precision,
self-ensemble); nothing on it names a path or weights on the server. Jobs
run one at a time, queued (the page shows the queue position), through
:class:`~.jobs.Restorer`, the library ``cnlrn infer`` runs. Uploads and
results live in a temporary folder removed when the server stops.
"""

from __future__ import annotations

import os
from types import ModuleType

from cnlrn_arch.inference.inputs import VIDEO_EXTENSIONS
from cnlrn_arch.runtime.speed import slow_precision_note
from cnlrn_arch.web.jobs import Restorer, serving_folder, write_examples
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import IMG_EXTENSIONS
from cnlrn_base.inference_defaults import (
    DEFAULT_HOST,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
)
from cnlrn_base.optional import import_optional

TITLE = 'CNLRN: 4x super-resolution of blurry photographs'
INTRO = """\
Upload a small, blurry photograph (PNG, JPEG, TIFF, WebP, BMP; 8- or 16-bit, with or without alpha)
or a short clip: it is deblurred and upscaled 4x as `cnlrn infer` does, and shown beside bicubic
upscaling (a clip's first frame; drag the slider, scroll over the picture to zoom). The result
downloads in full: a PNG in the input's mode, or the restored clip with its sound.
"""


def build_page(gr: ModuleType, restorer: Restorer, folder: str, examples: list[str]):
    """The page's Blocks, running jobs through ``restorer`` in ``folder``.

    Args:
        gr (ModuleType): the gradio module.
        restorer (Restorer): the loaded network and its settings.
        folder (str): where each job writes its files.
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
            result = restorer.restore(upload, folder, int(tile or 0) or None, half, ensemble, report)
        except UserError as err:
            raise gr.Error(str(err), title='Cannot restore this file', print_exception=False) from None
        return (result.bicubic, result.restored), result.download

    device_type = restorer.settings.device.type
    half_label = f'Half precision ({restorer.half} on {device_type})' if restorer.half else 'Half precision'
    slow = slow_precision_note(restorer.half, device_type)
    if slow:
        half_label += f': {slow}'
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f'# {TITLE}\n{INTRO}')
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label='Blurry low-resolution image or clip',
                    file_types=sorted({ext.lower() for ext in IMG_EXTENSIONS + VIDEO_EXTENSIONS}),
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


def serve(
    weights: str,
    opt: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    device: str = 'auto',
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
) -> None:
    """Serve the page until Ctrl-C or SIGTERM; the temporary folder is removed then.

    Args:
        weights (str): weights as ``cnlrn infer --weights`` takes them.
        opt (str | None): option file whose ``network_g`` gives the architecture.
        host (str): the address to listen on.
        port (int): the port.
        device (str): 'auto', 'cpu' or 'cuda'.
        max_pixels (int): larger images and clip frames are refused before they are decoded.
        max_frames (int): longer clips are refused.
        max_upload_mb (int): larger uploads are refused.
    """
    with serving_folder() as folder:
        os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # no usage reports or version checks over the network
        gr = import_optional('gradio', 'cnlrn serve')
        restorer = Restorer(weights, opt, device, max_pixels, max_frames)
        examples = os.path.join(folder, 'examples')
        os.makedirs(examples)
        page = build_page(gr, restorer, folder, write_examples(examples))
        page.queue(default_concurrency_limit=1)
        _, url, _ = page.launch(
            server_name=host,
            server_port=port,
            share=False,
            ssr_mode=False,
            max_file_size=f'{max_upload_mb}mb',
            allowed_paths=[examples],
            quiet=True,
            prevent_thread_lock=True,
        )
        print(f'cnlrn serve: open {url} in a browser; Ctrl-C stops the server and removes its files', flush=True)
        page.block_thread()  # until Ctrl-C or SIGTERM
