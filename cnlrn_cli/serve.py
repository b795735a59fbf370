"""``cnlrn serve``: the web page of ``cnlrn infer`` (Gradio), for trying the network in a browser."""

import ipaddress
import sys

from cnlrn_base.inference_defaults import (
    DEFAULT_EXT,
    DEFAULT_HOST,
    DEFAULT_JOB_MINUTES,
    DEFAULT_KEEP_MINUTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TEMP_MB,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    OUTPUT_EXTS,
)
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.arguments import add_device_argument, add_opt_argument, int_at_least, positive_float

DESCRIPTION = f"""\
Starts a web page (Gradio; pip install -e '.[web]') where an image or a
short clip is uploaded, restored as cnlrn infer restores it, compared with
bicubic upscaling and downloaded (an image, or the restored clip).
--outscale and --ext choose the results' size and image type for every
upload, as they do for cnlrn infer. Jobs run one
at a time, queued.

The page listens on {DEFAULT_HOST} (this machine only) unless --host is
given. The page names the weights by their file name and no other file on
the server. Uploads and results are kept in a temporary folder: each job's
are removed once its result is downloaded, or --keep-minutes after their
last use, the oldest first while the folder is over --max-temp-mb, and the
whole folder when the server stops (Ctrl-C or SIGTERM: the running job stops
too).
"""


def add_arguments(parser):
    parser.description = DESCRIPTION
    parser.add_argument(
        '--weights',
        default=DEMO_CHECKPOINT,
        metavar='W.pth',
        help='weights as cnlrn infer takes them (default: the demo checkpoint shipped in the repository)',
    )
    add_opt_argument(parser)
    parser.add_argument(
        '--host',
        default=DEFAULT_HOST,
        help='address to listen on, e.g. 0.0.0.0 for every interface (default: %(default)s)',
    )
    parser.add_argument('--port', type=int_at_least(1), default=DEFAULT_PORT, help='(default: %(default)s)')
    add_device_argument(parser)
    parser.add_argument(
        '--max-pixels',
        type=int_at_least(1),
        default=DEFAULT_MAX_PIXELS,
        metavar='N',
        help='refuse larger images (width x height) without decoding them (default: %(default)s)',
    )
    parser.add_argument(
        '--max-frames',
        type=int_at_least(1),
        default=DEFAULT_MAX_FRAMES,
        metavar='N',
        help='refuse longer clips (cnlrn infer restores any length) (default: %(default)s)',
    )
    parser.add_argument(
        '--max-upload-mb',
        type=int_at_least(1),
        default=DEFAULT_MAX_UPLOAD_MB,
        metavar='MB',
        help='refuse larger uploads (default: %(default)s)',
    )
    parser.add_argument(
        '--job-minutes',
        type=int_at_least(1),
        default=DEFAULT_JOB_MINUTES,
        metavar='M',
        help='stop a job running longer, so that it frees the queue (default: %(default)s)',
    )
    parser.add_argument(
        '--keep-minutes',
        type=int_at_least(1),
        default=DEFAULT_KEEP_MINUTES,
        metavar='M',
        help='remove uploads and results unused this long (at once once a result is downloaded) (default: %(default)s)',
    )
    parser.add_argument(
        '--max-temp-mb',
        type=int_at_least(1),
        default=DEFAULT_MAX_TEMP_MB,
        metavar='MB',
        help='bound the temporary folder: the oldest uploads and results go first, then jobs are refused '
        '(default: %(default)s)',
    )
    parser.add_argument(
        '--outscale',
        type=positive_float,
        metavar='S',
        help="results' size = the upload's x S, the x4 output resized by Lanczos (default: x4)",
    )
    parser.add_argument(
        '--ext',
        choices=OUTPUT_EXTS,
        default=DEFAULT_EXT,
        help='type of restored images, as cnlrn infer --ext: jpg drops alpha (default: %(default)s)',
    )
    parser.set_defaults(run=run)


def is_loopback(host):
    """Whether ``host`` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    try:
        return host == 'localhost' or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def run(args):
    from cnlrn_arch.web import app
    from cnlrn_arch.web.jobs import ServeLimits
    from cnlrn_arch.weights.sources import resolve_weights

    if not is_loopback(args.host):
        print(
            f'cnlrn serve: warning: listening on {args.host}: whoever reaches this machine can use the page '
            '(no login, no TLS)',
            file=sys.stderr,
        )
    limits = ServeLimits(
        args.max_pixels, args.max_frames, args.max_upload_mb, args.job_minutes, args.keep_minutes, args.max_temp_mb
    )
    weights = resolve_weights(args.weights)
    app.serve(weights, args.opt, args.host, args.port, args.device, limits, args.outscale, args.ext)
