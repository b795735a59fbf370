"""Restoring image and video files into a folder, one after another (``cnlrn infer``).

Each image is written as the PNG OUTDIR/<name><suffix>.png in its own mode
and bit depth, upright; each video (by its extension) as OUTDIR/<name><suffix>.mp4
(see :mod:`.restore_video`). An input that cannot be read, is over the pixel
limit, has several frames, gives a non-finite output, or whose output would
overwrite an input, is reported and skipped; the others are still restored.
"""

import os
import sys

from tqdm import tqdm

from cnlrn_arch.inference.image_io import DEFAULT_MAX_PIXELS, find_images, read_image
from cnlrn_arch.inference.network import load_network, resolve_device
from cnlrn_arch.inference.restore_video import restore_video
from cnlrn_arch.inference.upscale import SUGGESTED_TILE, restore_image
from cnlrn_arch.inference.video_io import DEFAULT_CRF, check_crf, is_video_name, open_video, output_extension
from cnlrn_arch.runtime.speed import AMP_DTYPES, Speed, check_autocast, compile_args, compiled, to_memory_format
from cnlrn_base.errors import UserError

DEFAULT_TILE_PAD = 16
# appended to each output's name
DEFAULT_SUFFIX = '_cnlrn'
# LR inputs above this many pixels print a hint to use --tile (full-size activations take gigabytes)
LARGE_INPUT_PIXELS = 1024 * 1024


def _file_id(path):
    """(device, inode) of the file ``path`` names, or None where there is none (reading a broken link reports it)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _check_output(path, out_path, input_ids, written_ids):
    """Refuse to replace an input, or an output written earlier in this run (two inputs with the same stem)."""
    # (device, inode) pairs see through symlinks, hard links and case-insensitive file names
    owner = _file_id(out_path)
    if owner in input_ids:
        raise UserError(
            f'{path}: its output {out_path} would overwrite the input {input_ids[owner]}; choose another -o or --suffix'
        )
    if owner in written_ids:
        raise UserError(f'{path}: its output {out_path} was already written from {written_ids[owner]}')


def restore_files(
    inputs,
    output,
    weights,
    opt=None,
    tile=None,
    tile_pad=None,
    self_ensemble=False,
    device='auto',
    precision=None,
    channels_last=False,
    compile_backend=None,
    suffix=DEFAULT_SUFFIX,
    max_pixels=DEFAULT_MAX_PIXELS,
    crf=DEFAULT_CRF,
    lossless=False,
    frames_out=None,
    backend='torch',
):
    """Restore the images and videos ``inputs`` names into the folder ``output``; return how many were skipped.

    Args:
        inputs (list[str]): image or video files, folders (their images and videos) or glob patterns.
        output (str): folder for the results, created if missing.
        weights (str): weights for ``load_network`` (a state dict or checkpoint; an ONNX file for onnxruntime).
        opt (str | None): option file whose ``network_g`` gives the architecture (default: CNLRN's).
        tile (int | None): LR tile side; None runs each image whole.
        tile_pad (int | None): LR context around each tile (default: DEFAULT_TILE_PAD); needs ``tile``.
        self_ensemble (bool): average over the 8 flips/rotations.
        device (str): 'auto', 'cpu' or 'cuda'.
        precision (str | None): None (float32) or a key of AMP_DTYPES to autocast to.
        channels_last (bool): NHWC weights and activations.
        compile_backend (str | None): torch.compile backend, None for none.
        suffix (str): appended to each output's name.
        max_pixels (int): larger images, and videos of larger frames, are skipped without being decoded.
        crf (int): H.264 constant rate factor of the videos, 0 (best) to 51.
        lossless (bool): encode the videos' restored frames exactly (``crf`` unused).
        frames_out (str | None): folder that also receives each video's restored frames as PNGs,
            in FRAMES_OUT/<name><suffix>/; a rerun reuses the frames found there.
        backend (str): 'torch' or 'onnxruntime', as :func:`~.network.load_network` takes it.

    Raises:
        KeyboardInterrupt: on Ctrl-C, saying how many files were written.
    """
    if tile_pad is not None and tile is None:
        raise UserError('--tile-pad needs --tile')
    tile_pad = DEFAULT_TILE_PAD if tile_pad is None else tile_pad
    check_crf(crf)
    if backend == 'onnxruntime':
        torch_only = [f'--{precision}'] * bool(precision) + ['--channels-last'] * channels_last
        torch_only += ['--compile'] * bool(compile_backend)
        if torch_only:
            raise UserError(f'{" ".join(torch_only)}: PyTorch options, not for --backend onnxruntime (float32)')
    device = resolve_device(device)
    check_autocast(device.type, AMP_DTYPES.get(precision), f'--{precision}')
    speed = Speed(channels_last, compile_args({'backend': compile_backend} if compile_backend else None, '--compile'))
    inputs = find_images(inputs)
    net = compiled(to_memory_format(load_network(weights, opt, device, backend), speed), speed)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create output folder {output}: {err.strerror}') from None
    input_ids = {file_id: path for path in inputs if (file_id := _file_id(path))}
    written_ids = {}
    hinted = False
    failed = 0
    noun = 'files' if any(map(is_video_name, inputs)) else 'images'
    try:
        # one input has only its video's frame bar: nested bars leave cursor escapes in logs
        for path in tqdm(inputs, desc='infer', unit=noun[:-1], disable=len(inputs) == 1):
            stem = os.path.splitext(os.path.basename(path))[0] + suffix
            try:
                if is_video_name(path):
                    with open_video(path, max_pixels) as video:
                        out_path = os.path.join(output, stem + output_extension(video))
                    _check_output(path, out_path, input_ids, written_ids)
                    frames = os.path.join(frames_out, stem) if frames_out is not None else None
                    restore_video(
                        net,
                        path,
                        out_path,
                        device,
                        tile,
                        tile_pad,
                        self_ensemble,
                        precision,
                        crf,
                        lossless,
                        frames,
                        max_pixels=max_pixels,
                    )
                    written_ids[_file_id(out_path)] = path
                    continue
                out_path = os.path.join(output, stem + '.png')
                _check_output(path, out_path, input_ids, written_ids)
                image = read_image(path, max_pixels)
                height, width = image.pixels.shape[:2]
                if tile is None and height * width > LARGE_INPUT_PIXELS and not hinted:
                    tqdm.write(
                        f'cnlrn infer: {path} is {width}x{height}; if memory runs out, add --tile {SUGGESTED_TILE}',
                        file=sys.stderr,
                    )
                    hinted = True
                restore_image(net, image, path, out_path, device, tile, tile_pad, self_ensemble, precision)
                del image  # before the next input is decoded
                written_ids[_file_id(out_path)] = path
            except UserError as err:
                failed += 1
                tqdm.write(f'cnlrn infer: skipped {err}', file=sys.stderr)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f'{len(written_ids)} {noun} written to {output}') from None
    print(f'wrote {len(inputs) - failed} of {len(inputs)} {noun} to {output}')
    return failed
