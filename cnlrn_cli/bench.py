"""``cnlrn bench``."""

import json
import shlex
import sys

from cnlrn_base.command_defaults import CASE_BUDGET_S, MATMUL_SIZE
from cnlrn_base.errors import UserError
from cnlrn_cli.arguments import description, height_width, int_at_least

# the before/after table of issue 23: a small frame and a REDS frame
ONNXRUNTIME_SIZES = ((90, 160), (180, 320))


def add_arguments(parser):
    parser.description = description('cnlrn_tools.speed.speed_bench')
    parser.add_argument(
        '--sizes',
        nargs='+',
        type=height_width,
        metavar='HxW',
        help='LR input sizes for inference (default: 90x160 180x320 360x640; with --onnxruntime 90x160 180x320)',
    )
    parser.add_argument(
        '--runs',
        type=int_at_least(1),
        default=3,
        help=f'forwards per case (default: %(default)s); fewer, down to one, where the FLOP floor '
        f'says they would take more than {CASE_BUDGET_S} s',
    )
    parser.add_argument(
        '--train-size',
        type=height_width,
        default=(64, 64),
        metavar='HxW',
        help='LR patch of the training step (default: 64x64)',
    )
    parser.add_argument('--train-batch', type=int_at_least(1), default=2, help='batch of the training step')
    parser.add_argument('--no-training', action='store_true', help='skip the training-step cases')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument(
        '--tf32',
        action='store_true',
        help='also time float32 with TF32 convolutions and matmuls (CUDA only), against a TF32 matmul peak',
    )
    parser.add_argument('--threads', type=int_at_least(1), help='torch threads (default: torch chooses)')
    parser.add_argument(
        '--config',
        default='{}',
        metavar='JSON',
        help='CNLRN arguments overriding the released configuration, e.g. \'{"n_feats": 32}\'',
    )
    parser.add_argument(
        '--matmul-size',
        type=int_at_least(64),
        default=MATMUL_SIZE,
        help='side of the square matmul among the GEMMs that measure the peak (default: %(default)s)',
    )
    parser.add_argument(
        '--onnxruntime',
        action='store_true',
        help='instead of the other cases: time onnxruntime against PyTorch on the CPU, taking turns in one process, '
        'at each of --sizes, --runs each, against the floor, and profile both operator by operator at the largest; '
        'adds its section to RESULTS.md',
    )
    parser.add_argument('--out', default='benchmarks', help='folder for RESULTS.md (default: %(default)s)')
    parser.set_defaults(run=run)


def run(args):
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as err:
        raise UserError(f'--config: not JSON: {err}') from None
    command = 'cnlrn bench ' + shlex.join(sys.argv[2:])
    if args.onnxruntime:
        if args.device != 'cpu':
            raise UserError('--onnxruntime compares on the CPU: leave out --device cuda')
        from cnlrn_tools.speed.onnx_compare import compare_onnxruntime  # onnxruntime is optional

        sizes = args.sizes or ONNXRUNTIME_SIZES
        compare_onnxruntime(command, args.out, config, sizes, args.runs, args.threads)
        return
    from cnlrn_tools.speed import speed_bench as speed

    speed.run_speed_benchmark(
        command,
        args.out,
        config,
        args.sizes or list(speed.DEFAULT_SIZES),
        args.runs,
        args.train_size,
        args.train_batch,
        not args.no_training,
        args.device,
        args.threads,
        args.matmul_size,
        args.tf32,
    )
