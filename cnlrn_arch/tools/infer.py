"""``cnlrn infer``: super-resolve blurry low-resolution images x4 with trained weights.

Inputs are image files, folders (their images, not recursive) or glob
patterns (quoted, so the shell leaves them alone): PNG, JPEG, BMP, TIFF and
WebP, 8- or 16-bit, grayscale, RGB or RGBA. Each is written as the PNG
OUTDIR/<name><suffix>.png in the same mode and bit depth; the alpha channel
is upscaled with bicubic, since the network sees RGB only.

--bf16/--fp16, --channels-last and --compile trade a little exactness (the
first two) or start-up time (--compile) for speed; all are off by default.

An input that cannot be read, or whose output would overwrite an input, is
reported and skipped; the exit status is then 1.
"""
import argparse
import os
import sys

import torch
from tqdm import tqdm

from ..inference.image_io import find_images, read_image, write_png
from ..inference.network import load_network, resolve_device
from ..inference.upscale import upscale
from ..utils.errors import UserError
from ..utils.image_formats import int_at_least
from ..utils.speed import AMP_DTYPES, Speed, check_autocast, compile_args, compiled, to_memory_format

DEFAULT_TILE_PAD = 16
SUGGESTED_TILE = 256
# LR inputs above this many pixels print a hint to use --tile (full-size activations take gigabytes)
LARGE_INPUT_PIXELS = 1024 * 1024


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'infer', help='super-resolve blurry LR images x4 with trained weights',
        description=__doc__.split('\n', 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', nargs='+', required=True, metavar='PATH',
                        help='image files, folders or glob patterns')
    parser.add_argument('-o', '--output', required=True, metavar='OUTDIR', help='folder for the results')
    parser.add_argument('--weights', required=True, metavar='W.pth',
                        help="a bare state dict (the authors' release) or a BasicSR checkpoint "
                        '(params_ema, else params)')
    parser.add_argument('--opt', metavar='X.yml',
                        help="option file whose network_g gives the architecture (default: CNLRN as in the paper)")
    parser.add_argument('--tile', type=int_at_least(1), metavar='N',
                        help='run N x N LR tiles one at a time to bound memory, blended without seams')
    parser.add_argument('--tile-pad', type=int_at_least(0), metavar='P',
                        help='LR pixels of context around each tile, overlapping its neighbours '
                        f'(default: {DEFAULT_TILE_PAD})')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='average over the 8 flips/rotations (slightly better, 8 times slower)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='auto: CUDA when available (default: %(default)s)')
    precision = parser.add_mutually_exclusive_group()
    for name in AMP_DTYPES:
        precision.add_argument(f'--{name}', dest='precision', action='store_const', const=name,
                               help=f'autocast to {name}: faster where the GPU or CPU computes {name} natively')
    parser.add_argument('--channels-last', action='store_true',
                        help='keep the weights and activations in NHWC memory order (often faster on GPUs)')
    parser.add_argument('--compile', nargs='?', const='inductor', metavar='BACKEND',
                        help='torch.compile the network (default backend: inductor, which needs a C++ compiler '
                        'on the CPU); the first image, and each new image size, takes longer')
    parser.add_argument('--suffix', default='_cnlrn', help='appended to each output name (default: %(default)s)')
    parser.set_defaults(func=infer)


def _file_id(path):
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _check_output(path, out_path, input_ids, written_ids):
    """Refuse to replace an input, or an output written earlier in this run (two inputs with the same stem)."""
    # (device, inode) pairs see through symlinks, hard links and case-insensitive file names
    owner = _file_id(out_path) if os.path.exists(out_path) else None
    if owner in input_ids:
        raise UserError(f'{path}: its output {out_path} would overwrite the input {input_ids[owner]}; '
                        'choose another -o or --suffix')
    if owner in written_ids:
        raise UserError(f'{path}: its output {out_path} was already written from {written_ids[owner]}')


def _upscale(net, image, path, device, args, tile_pad):
    """:func:`upscale`, with running out of memory turned into a per-image error that suggests tiles."""
    try:
        return upscale(net, image, device, args.tile, tile_pad, args.self_ensemble, AMP_DTYPES.get(args.precision))
    except RuntimeError as err:
        if not (isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)):  # CPU allocator
            raise
    # outside the except block: the traceback's frames, which hold the tensors, are released by now
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    height, width = image.rgb.shape[:2]
    advice = f'a smaller --tile than {args.tile}' if args.tile else f'--tile {SUGGESTED_TILE}'
    raise UserError(f'{path}: out of memory on {width}x{height} pixels; retry with {advice}')


def infer(args):
    if args.tile_pad is not None and args.tile is None:
        raise UserError('--tile-pad needs --tile')
    tile_pad = DEFAULT_TILE_PAD if args.tile_pad is None else args.tile_pad
    device = resolve_device(args.device)
    check_autocast(device.type, AMP_DTYPES.get(args.precision), f'--{args.precision}')
    speed = Speed(args.channels_last, compile_args({'backend': args.compile} if args.compile else None, '--compile'))
    inputs = find_images(args.input)
    net = compiled(to_memory_format(load_network(args.weights, args.opt, device), speed), speed)
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create output folder {args.output}: {err.strerror}') from None
    input_ids = {_file_id(path): path for path in inputs}
    written_ids = {}
    hinted = False
    failed = 0
    for path in tqdm(inputs, desc='infer', unit='image'):
        out_path = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + args.suffix + '.png')
        try:
            _check_output(path, out_path, input_ids, written_ids)
            image = read_image(path)
            height, width = image.rgb.shape[:2]
            if args.tile is None and height * width > LARGE_INPUT_PIXELS and not hinted:
                tqdm.write(f'cnlrn infer: {path} is {width}x{height}; if memory runs out, add --tile {SUGGESTED_TILE}',
                           file=sys.stderr)
                hinted = True
            write_png(out_path, _upscale(net, image, path, device, args, tile_pad))
            written_ids[_file_id(out_path)] = path
        except UserError as err:
            failed += 1
            tqdm.write(f'cnlrn infer: skipped {err}', file=sys.stderr)
    print(f'wrote {len(inputs) - failed} of {len(inputs)} images to {args.output}')
    return 1 if failed else 0
