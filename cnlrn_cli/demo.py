"""``cnlrn demo``."""

from os import path as osp

from cnlrn_base.inference_defaults import DEMO_QUICK_ITERS
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_cli.arguments import description


def add_arguments(parser):
    parser.description = description('cnlrn_arch.demo')
    parser.add_argument('--out', default=osp.join('results', 'demo'), help='pictures and table (default: %(default)s)')
    parser.add_argument(
        '--checkpoint',
        default=DEMO_CHECKPOINT,
        help='demo checkpoint to compare with (default: the one shipped in the repository)',
    )
    parser.add_argument(
        '--quick',
        action='store_true',
        help=f'{DEMO_QUICK_ITERS} iterations per stage and a smaller data set: checks only the pipeline',
    )
    parser.set_defaults(run=run)


def run(args):
    from cnlrn_arch import demo

    demo.run_demo(args.out, args.checkpoint, args.quick)
