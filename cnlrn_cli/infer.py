"""``cnlrn infer``: super-resolve blurry low-resolution images x4 with trained weights."""

import os
import sys

from cnlrn_base.inference_choices import check_choices
from cnlrn_base.inference_defaults import (
    AUTOCAST_PRECISIONS,
    BACKENDS,
    DEFAULT_CRF,
    DEFAULT_EXT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SUFFIX,
    DEFAULT_TILE_PAD,
    OUTPUT_EXTS,
)
from cnlrn_base.input_files import find_images
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_base.stored_options import check_network_options
from cnlrn_base.video_input import refused_videos
from cnlrn_cli.arguments import add_device_argument, add_opt_argument, int_at_least, positive_float

DESCRIPTION = f"""\
Inputs are image files, folders (their images, not recursive) or glob
patterns (quoted, so the shell leaves them alone): PNG, JPEG, BMP, TIFF and
WebP, 8- or 16-bit, grayscale, gray+alpha, RGB or RGBA. Each is written as
OUTDIR/<name><suffix>.<ext>: with --ext auto (the default) PNG, JPEG and
WebP inputs keep their type, others become PNG. PNG keeps the mode and bit
depth; WebP keeps alpha in 8 bits; JPEG is 8-bit and drops the alpha
channel. The alpha channel is upscaled with bicubic, since the network sees
RGB only. --outscale S resizes the x4 output to S times the input's size
(Lanczos, as Real-ESRGAN does), for images and videos. An EXIF
orientation is applied on reading, so outputs are written upright (without
EXIF), as image viewers show the inputs.

Images of more than --max-pixels pixels (default {DEFAULT_MAX_PIXELS}) are
skipped before they are decoded. Animations and multi-page files (GIF, APNG,
WebP, TIFF of several frames) are skipped too: extract the frames first.
With --tile, memory grows with the image's width, not its height.

--bf16/--fp16, --tf32, --channels-last and --compile trade a little exactness
(the first three) or start-up time (--compile) for speed; all are off by default.

Videos (.mp4, .m4v, .mkv, .mov, .webm, .avi; any codec FFmpeg decodes,
through PyAV) are written as OUTDIR/<name><suffix>.mp4: every frame restored
at its input timestamp (so the frame rate, variable rates included, and the
duration are kept), the audio streams copied unchanged, H.264 of quality
--crf, or --lossless. Where an audio codec cannot go into MP4 the output is
.mkv instead. Frames stream through, so memory does not grow with the
video's length; the output appears under its name only once complete.
--frames-out DIR also writes the restored frames as PNGs in
DIR/<name><suffix>/; a run that was interrupted restarts from the frames
found there. Frame PNGs there that cnlrn infer did not write are refused,
never replaced. Every decoded frame is checked against --max-pixels. While
every input is a video, each is decoded once first ('checking NAME'), before
the network is loaded, until one would be restored: videos that are all
refused are refused in seconds, without loading the network.

An input that cannot be read, or whose output would overwrite an input, is
reported and skipped; the exit status is then 1. So is an input whose output
name is taken by a file cnlrn infer did not write (--overwrite replaces it;
cnlrn infer's own earlier outputs are always replaced). So is an input whose
output holds NaN or Inf: it is not written. So is a video that is truncated,
has no video stream or a codec FFmpeg cannot decode.
"""


def add_arguments(parser):
    parser.description = DESCRIPTION
    parser.add_argument(
        '-i', '--input', nargs='+', required=True, metavar='PATH', help='image or video files, folders or glob patterns'
    )
    parser.add_argument('-o', '--output', required=True, metavar='OUTDIR', help='folder for the results')
    parser.add_argument(
        '--weights',
        default=DEMO_CHECKPOINT,
        metavar='W.pth',
        help="a .pth (a bare state dict, as the authors' release, or a BasicSR checkpoint: params_ema, else "
        'params), a .safetensors file, or an .onnx file with --backend onnxruntime (default: the demo '
        'checkpoint shipped in the repository, trained on the embedded demo data)',
    )
    add_opt_argument(parser)
    parser.add_argument(
        '--backend',
        choices=BACKENDS,
        default='torch',
        help='run the network with PyTorch, or an exported .onnx file with onnxruntime (default: %(default)s)',
    )
    parser.add_argument(
        '--tile',
        type=int_at_least(1),
        metavar='N',
        help='run N x N LR tiles one at a time to bound memory, blended without seams',
    )
    parser.add_argument(
        '--tile-pad',
        type=int_at_least(0),
        metavar='P',
        help=f'LR pixels of context around each tile, overlapping its neighbours (default: {DEFAULT_TILE_PAD})',
    )
    parser.add_argument(
        '--self-ensemble',
        action='store_true',
        help='average over the 8 flips/rotations (slightly better, 8 times slower)',
    )
    add_device_argument(parser)
    precision = parser.add_mutually_exclusive_group()
    for name in AUTOCAST_PRECISIONS:
        precision.add_argument(
            f'--{name}',
            dest='precision',
            action='store_const',
            const=name,
            help=f'autocast to {name}: faster where the GPU or CPU computes {name} natively',
        )
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='NHWC weights and activations on a GPU too (often faster there; the CPU always runs NHWC)',
    )
    parser.add_argument(
        '--tf32',
        action='store_true',
        help='CUDA float32 convolutions and matmuls in TF32 (Ampere and later GPUs; default: IEEE float32)',
    )
    parser.add_argument(
        '--compile',
        nargs='?',
        const='inductor',
        metavar='BACKEND',
        help='torch.compile the network (default backend: inductor, which needs a C++ compiler '
        'on the CPU); the first image, and each new image size, takes longer',
    )
    parser.add_argument(
        '--max-pixels',
        type=int_at_least(1),
        default=DEFAULT_MAX_PIXELS,
        metavar='N',
        help='skip larger images (width x height) without decoding them (default: %(default)s)',
    )
    parser.add_argument(
        '--outscale',
        type=positive_float,
        metavar='S',
        help="final size = input size x S (e.g. 2 or 3.5): the network's x4 output resized by Lanczos, "
        'for images and videos (default: x4, not resized)',
    )
    parser.add_argument(
        '--ext',
        choices=OUTPUT_EXTS,
        default=DEFAULT_EXT,
        help="output image type: auto keeps PNG, JPEG and WebP inputs' type (others: png); png keeps 16 bits "
        'and alpha, webp keeps alpha (8-bit), jpg drops alpha (8-bit) (default: %(default)s)',
    )
    parser.add_argument('--suffix', default=DEFAULT_SUFFIX, help='appended to each output name (default: %(default)s)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace files of the output names that cnlrn infer did not write (default: skip those inputs)',
    )
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument(
        '--crf',
        type=int_at_least(0),
        default=DEFAULT_CRF,
        metavar='Q',
        help='H.264 quality of output videos: 0 (best, largest) to 51; 18 looks lossless to most eyes '
        '(default: %(default)s)',
    )
    quality.add_argument(
        '--lossless',
        action='store_true',
        help='encode output videos losslessly (H.264 of the RGB samples, libx264rgb: exact, large files, '
        'which some players cannot show)',
    )
    parser.add_argument(
        '--frames-out',
        metavar='DIR',
        help="also write each video's restored frames as PNGs into DIR/<name><suffix>/; "
        'a rerun reuses the frames already there',
    )
    parser.set_defaults(run=run)


def weights_line(weights):
    """One line saying which weights ``cnlrn infer`` runs: their file, and what the shipped ones are."""
    from cnlrn_arch.weights.sources import known_description

    known = known_description(weights)
    return f'weights: {os.path.basename(weights)}, {known} (--weights for yours)' if known else f'weights: {weights}'


def run(args):
    check_choices(args.tile, args.tile_pad, args.precision, args.channels_last, args.compile, args.backend)
    # what the inputs claim is bounded before torch is imported, whose import alone takes most of a gigabyte
    if args.backend == 'torch':
        check_network_options(args.weights, args.opt)
    refused = refused_videos(find_images(args.input), args.max_pixels)
    if refused:
        for message in refused:
            print(f'cnlrn infer: skipped {message}', file=sys.stderr)
        return 1
    from cnlrn_arch.inference.network import load_network
    from cnlrn_arch.inference.restore_files import FileOptions, restore_files
    from cnlrn_arch.inference.settings import InferenceSettings
    from cnlrn_arch.runtime.speed import slow_precision_note, use_tf32
    from cnlrn_arch.weights.sources import resolve_weights

    use_tf32(args.tf32)
    settings = InferenceSettings.checked(
        args.device,
        args.tile,
        args.tile_pad,
        args.self_ensemble,
        args.precision,
        args.channels_last,
        args.compile,
        args.backend,
    )
    options = FileOptions(
        args.max_pixels,
        args.suffix,
        args.crf,
        args.lossless,
        args.frames_out,
        args.overwrite,
        args.outscale,
        args.ext,
    )
    if args.backend == 'torch':
        note = slow_precision_note(args.precision, settings.device.type)
        if note:
            print(f'note: --{args.precision}: {note}', file=sys.stderr)
    network = load_network(resolve_weights(args.weights), args.opt, settings, args.backend)
    print(weights_line(network.source), flush=True)
    skipped = restore_files(args.input, args.output, network, settings, options)
    return 1 if skipped else 0
