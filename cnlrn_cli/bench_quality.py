"""``cnlrn bench-quality``."""

import shlex
import sys

from cnlrn_base.command_defaults import QUALITY_BUDGET_S, QUALITY_DEFAULT_VARIANTS, QUALITY_SEEDS, QUALITY_VARIANTS
from cnlrn_base.project import DEMO_DATA
from cnlrn_cli.arguments import add_device_argument, description, int_at_least, positive_float


def add_arguments(parser):
    parser.description = description('cnlrn_tools.quality.quality_bench')
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        '--budget-s',
        type=positive_float,
        help=f'training wall time of every method and seed, in seconds (default: {QUALITY_BUDGET_S})',
    )
    budget.add_argument('--iters', type=int_at_least(2), help='training iterations of every method and seed instead')
    parser.add_argument(
        '--seeds',
        type=int_at_least(1),
        default=QUALITY_SEEDS,
        help='runs of each method, from seeds 0 to N-1 (default: %(default)s)',
    )
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=QUALITY_VARIANTS,
        default=list(QUALITY_DEFAULT_VARIANTS),
        metavar='NAME',
        help=f'methods to train, of: {" ".join(QUALITY_VARIANTS)} (default: {" ".join(QUALITY_DEFAULT_VARIANTS)}; '
        'the GAN ones only where VGG19 weights are present)',
    )
    parser.add_argument(
        '--data',
        default=DEMO_DATA,
        help='demo data (cnlrn make-demo-data) or a REDS root prepared by cnlrn prepare-reds (default: %(default)s)',
    )
    parser.add_argument(
        '--val-frames',
        type=int_at_least(1),
        help='score on this many held-out images (of Val300 for REDS), spread evenly (default: all)',
    )
    parser.add_argument('--out', default='benchmarks', help='output folder (default: %(default)s)')
    add_device_argument(parser)
    parser.add_argument('--amp', choices=('bf16',), help='autocast training and inference to bfloat16')
    parser.add_argument(
        '--full-size', action='store_true', help='networks, batch and patch as the REDS option files have them'
    )
    parser.add_argument(
        '--lr-sweep',
        action='store_true',
        help="first try 0.5x, 1x and 2x each recipe's learning rates and keep the best on held-out images "
        'that are then not scored',
    )
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='rewrite QUALITY.md and quality.png from OUT/quality.json without training',
    )
    parser.set_defaults(run=run)


def run(args):
    from cnlrn_tools.quality import quality_bench as quality
    from cnlrn_tools.quality.train_variant import Budget

    if args.iters is not None:
        budget = Budget('iters', args.iters)
    else:
        budget = Budget('s', args.budget_s) if args.budget_s else quality.DEFAULT_BUDGET
    quality.run_quality_benchmark(
        shlex.join(['cnlrn'] + sys.argv[1:]),
        args.out,
        args.data,
        variants=args.variants,
        budget=budget,
        seeds=args.seeds,
        device=args.device,
        amp=args.amp,
        full_size=args.full_size,
        val_frames=args.val_frames,
        lr_sweep=args.lr_sweep,
        report_only=args.report_only,
    )
