"""``cnlrn export``: trained weights as .safetensors, .pth or ONNX, with or without an option file."""

import json

from cnlrn_base.errors import UserError
from cnlrn_base.output_paths import refuse_input_as_output
from cnlrn_cli.arguments import add_opt_argument, int_at_least

DESCRIPTION = """\
Without --opt the network is the one whose options (network_g) the weights file
stores (checkpoints written by this project's training, .safetensors files written
by this command), else the one its keys and shapes describe: any CNLRN (the
release, the demo, every ablation), CNLRNPreDeblur, DeblurSRCascade, RCAN or
RRDBNet. Patch sizes of the attention heads leave no trace in the weights (the
defaults, 4 heads of 4x4 patches, are taken), nor does upsampling: 'post' (a bare
state dict of that ablation needs --opt).

--safetensors and --pth copy the tensors bit for bit (params_ema of a BasicSR
checkpoint, else params) and store the network's options beside them: in the
.safetensors metadata (JSON under 'network_g'), or under the checkpoint's
'network_g' key.
"""


def add_arguments(parser):
    parser.description = DESCRIPTION
    parser.add_argument(
        '--weights',
        required=True,
        metavar='W',
        help='.pth (a bare state dict or a BasicSR checkpoint) or .safetensors weights',
    )
    add_opt_argument(parser)
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument('--safetensors', metavar='OUT', help='write a .safetensors file, the options in its metadata')
    out.add_argument('--pth', metavar='OUT', help="write a BasicSR checkpoint {'params', 'network_g'}")
    out.add_argument('--onnx', metavar='OUT.onnx', help='write the network as an ONNX graph')
    parser.add_argument(
        '--opset',
        type=int_at_least(1),
        metavar='N',
        help="ONNX opset of --onnx (default: the exporter's DEFAULT_OPSET, in cnlrn_arch/weights/onnx_file.py)",
    )
    parser.set_defaults(run=run)


def run(args):
    if args.opset is not None and not args.onnx:
        raise UserError('--opset applies to --onnx only')
    refuse_input_as_output(args.onnx or args.safetensors or args.pth, {'--weights': args.weights, '--opt': args.opt})
    from cnlrn_arch.weights.conversion import export_weights
    from cnlrn_arch.weights.loading import build_loaded
    from cnlrn_arch.weights.sources import resolve_weights

    args.weights = resolve_weights(args.weights)  # a path, an http(s) URL or a model name

    if args.onnx:
        from cnlrn_arch.weights import onnx_file  # onnx is optional

        net, network_opt = build_loaded(args.weights, args.opt)
        opset = onnx_file.DEFAULT_OPSET if args.opset is None else args.opset
        onnx_file.export_onnx(net.eval(), args.onnx, opset)
        out = args.onnx
    else:
        fmt, out = ('safetensors', args.safetensors) if args.safetensors else ('pth', args.pth)
        network_opt = export_weights(args.weights, out, fmt, args.opt)
    print(f'wrote {out}: network_g {json.dumps(network_opt)}')
    return 0
