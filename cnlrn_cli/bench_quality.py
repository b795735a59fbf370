"""``cnlrn bench-quality``."""

import shlex
import sys

from cnlrn_arch.benchmark.quality import run as quality
from cnlrn_arch.benchmark.quality.variants import BY_NAME
from cnlrn_arch.project import DEMO_DATA

from .arguments import description, int_at_least


def add_arguments(parser):
    parser.description = description(quality)
    parser.add_argument(
        '--iters',
        type=int_at_least(2),
        default=quality.DEFAULT_ITERS,
        help='training iterations of every variant (default: %(default)s)',
    )
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=list(BY_NAME),
        default=list(BY_NAME),
        metavar='NAME',
        help=f'variants to train (default: all: {" ".join(BY_NAME)})',
    )
    parser.add_argument(
        '--data', default=DEMO_DATA, help='demo data made by cnlrn make-demo-data (default: %(default)s)'
    )
    parser.add_argument('--out', default='benchmarks', help='output folder (default: %(default)s)')
    parser.add_argument(
        '--device',
        choices=('auto', 'cpu', 'cuda'),
        default='auto',
        help='auto: CUDA when available (default: %(default)s)',
    )
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='rewrite QUALITY.md and quality.png from OUT/quality.json without training',
    )
    parser.set_defaults(run=run)


def run(args):
    quality.run_quality_benchmark(
        shlex.join(['cnlrn'] + sys.argv[1:]),
        args.out,
        args.data,
        args.variants,
        args.iters,
        args.device,
        args.report_only,
    )
