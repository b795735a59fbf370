"""``cnlrn make-demo-data``."""

from cnlrn_base.command_defaults import DEMO_CROPS_PER_PHOTO, DEMO_SEED, DEMO_TRAIN_PHOTOS
from cnlrn_base.project import DEMO_DATA
from cnlrn_cli.arguments import description, positive_int


def add_arguments(parser):
    parser.description = description('cnlrn_arch.data_prep.demo_data')
    parser.add_argument('--out', default=DEMO_DATA, help='output folder (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=DEMO_SEED, help='random seed (default: %(default)s)')
    parser.add_argument(
        '--crops-per-photo',
        type=positive_int,
        default=DEMO_CROPS_PER_PHOTO,
        metavar='N',
        help=f'training crops per photo, {len(DEMO_TRAIN_PHOTOS)} photos (default: %(default)s)',
    )
    parser.add_argument('--force', action='store_true', help='remake OUT even if it already holds demo data')
    parser.set_defaults(run=run)


def run(args):
    from cnlrn_arch.data_prep.demo_data import make_demo_data

    make_demo_data(args.out, args.seed, args.crops_per_photo, args.force)
