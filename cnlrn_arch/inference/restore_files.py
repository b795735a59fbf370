"""Restoring image and video files into a folder, one after another (``cnlrn infer``).

Each image is written as OUTDIR/<name><suffix>.<ext>, upright: a PNG (its own mode
and bit depth) unless the input or ``ext`` names JPEG or WebP, resized if ``outscale``
says; each video (by its extension) as OUTDIR/<name><suffix>.mp4 (see :mod:`.restore_video`).
An input that cannot be read, is over the pixel limit, has several frames, gives a
non-finite output, or whose output would overwrite an input or a file cnlrn infer did
not write, is reported and skipped; the others are still restored.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from tqdm import tqdm

from cnlrn_arch.inference.image_io import is_own_image, output_type, read_image
from cnlrn_arch.inference.network import LoadedNetwork
from cnlrn_arch.inference.restore_video import restore_video
from cnlrn_arch.inference.settings import InferenceSettings
from cnlrn_arch.inference.upscale import restore_image
from cnlrn_arch.inference.video_io import check_crf, is_own_video, output_extension
from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import (
    DEFAULT_CRF,
    DEFAULT_EXT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SUFFIX,
    OUTPUT_EXTS,
    SUGGESTED_TILE,
)
from cnlrn_base.input_files import find_images, is_video_name
from cnlrn_base.output_paths import file_id
from cnlrn_base.video_input import open_video

# LR inputs above this many pixels print a hint to use --tile (full-size activations take gigabytes)
LARGE_INPUT_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class FileOptions:
    """What ``cnlrn infer`` reads and writes besides the network's work: limits, names, video encoding.

    Attributes:
        max_pixels (int): larger images, and videos of larger frames, are skipped without being decoded.
        suffix (str): appended to each output's name.
        crf (int): H.264 constant rate factor of the videos, 0 (best) to 51.
        lossless (bool): encode the videos' restored frames exactly (``crf`` unused).
        frames_out (str | None): folder that also receives each video's restored frames as PNGs,
            in FRAMES_OUT/<name><suffix>/; a rerun reuses the frames found there.
        overwrite (bool): replace an existing file of an output's name that ``cnlrn infer`` did not
            write (without it such an input is skipped; its own earlier outputs are always replaced).
        outscale (float | None): each output's size over its input's, resized by Lanczos after the network
            (images and videos); None: the network's scale.
        ext (str): the images' output type, one of OUTPUT_EXTS ('auto': see :func:`~.image_io.output_type`).

    Raises:
        UserError: for a ``crf`` libx264 does not take, an ``outscale`` that is not positive, an unknown ``ext``.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    suffix: str = DEFAULT_SUFFIX
    crf: int = DEFAULT_CRF
    lossless: bool = False
    frames_out: str | None = None
    overwrite: bool = False
    outscale: float | None = None
    ext: str = DEFAULT_EXT

    def __post_init__(self):
        check_crf(self.crf)
        if self.outscale is not None and not self.outscale > 0:
            raise UserError(f'--outscale {self.outscale}: must be a positive number')
        if self.ext not in OUTPUT_EXTS:
            raise UserError(f'--ext {self.ext}: must be one of {", ".join(OUTPUT_EXTS)}')


def _is_own_output(path):
    """Whether the file ``path`` is an image or a video that ``cnlrn infer`` wrote."""
    return is_own_video(path) if is_video_name(path) else is_own_image(path)


def _check_output(path, out_path, input_ids, written_ids, overwrite):
    """Refuse to replace an input, an output written earlier in this run (two inputs with the same stem), or,
    unless ``overwrite``, a file this project did not write (another container's extension, ``--suffix ''``)."""
    owner = file_id(out_path)
    if owner in input_ids:
        raise UserError(
            f'{path}: its output {out_path} would overwrite the input {input_ids[owner]}; choose another -o or --suffix'
        )
    if owner in written_ids:
        raise UserError(f'{path}: its output {out_path} was already written from {written_ids[owner]}')
    if not overwrite and os.path.lexists(out_path) and not _is_own_output(out_path):
        raise UserError(
            f'{path}: its output {out_path} exists and was not written by cnlrn infer; '
            'choose another -o or --suffix, or pass --overwrite to replace it'
        )


def restore_files(
    inputs: list[str],
    output: str,
    network: LoadedNetwork,
    settings: InferenceSettings,
    options: FileOptions | None = None,
) -> int:
    """Restore the images and videos ``inputs`` names into the folder ``output``; return how many were skipped.

    Args:
        inputs (list[str]): image or video files, folders (their images and videos) or glob patterns.
        output (str): folder for the results, created if missing.
        network (LoadedNetwork): the network, e.g. from :func:`~.network.load_network` with ``settings``.
        settings (InferenceSettings): how it runs (see :meth:`.InferenceSettings.checked`).
        options (FileOptions | None): limits, output names and video encoding (None: the defaults).

    Raises:
        KeyboardInterrupt: on Ctrl-C, saying how many files were written.
    """
    options = options or FileOptions()
    inputs = find_images(inputs)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create output folder {output}: {err.strerror}') from None
    input_ids = {ident: path for path in inputs if (ident := file_id(path))}
    written_ids = {}
    hinted = False
    failed = 0
    noun = 'files' if any(map(is_video_name, inputs)) else 'images'
    try:
        # one input has only its video's frame bar: nested bars leave cursor escapes in logs
        for path in tqdm(inputs, desc='infer', unit=noun[:-1], disable=len(inputs) == 1):
            stem = os.path.splitext(os.path.basename(path))[0] + options.suffix
            try:
                if is_video_name(path):
                    with open_video(path, options.max_pixels) as video:
                        out_path = os.path.join(output, stem + output_extension(video))
                    _check_output(path, out_path, input_ids, written_ids, options.overwrite)
                    frames = os.path.join(options.frames_out, stem) if options.frames_out is not None else None
                    restore_video(
                        network,
                        path,
                        out_path,
                        settings,
                        options.crf,
                        options.lossless,
                        frames,
                        max_pixels=options.max_pixels,
                        outscale=options.outscale,
                    )
                    written_ids[file_id(out_path)] = path
                    continue
                kind = output_type(path, options.ext)
                out_path = os.path.join(output, f'{stem}.{kind}')
                _check_output(path, out_path, input_ids, written_ids, options.overwrite)
                image = read_image(path, options.max_pixels)
                height, width = image.pixels.shape[:2]
                if settings.tile is None and height * width > LARGE_INPUT_PIXELS and not hinted:
                    tqdm.write(
                        f'cnlrn infer: {path} is {width}x{height}; if memory runs out, add --tile {SUGGESTED_TILE}',
                        file=sys.stderr,
                    )
                    hinted = True
                restore_image(network.module, image, path, out_path, settings, options.outscale, kind)
                del image  # before the next input is decoded
                written_ids[file_id(out_path)] = path
            except UserError as err:
                failed += 1
                tqdm.write(f'cnlrn infer: skipped {err}', file=sys.stderr)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f'{len(written_ids)} {noun} written to {output}') from None
    print(f'wrote {len(inputs) - failed} of {len(inputs)} {noun} to {output}')
    return failed
