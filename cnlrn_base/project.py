"""Names the whole project shares, spelled once: the repository's folders, the demo's files, the scale."""

from os import path as osp

# every network, data set and tool here super-resolves x4, as REDS' LR frames are 1/4 of the HR
SCALE = 4
# the LMDB / validation folder suffix of each image of a (sharp HR, blurry LR, sharp LR) triple
TRIPLE_SETS = ('sharp', 'blur_bicubic_X4', 'sharp_bicubic_X4')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS_DIR = osp.join(REPO, 'options')
DEMO_CHECKPOINT = osp.join(REPO, 'experiments', 'pretrained_models', 'CNLRN_demo.pth')
# option files of the demo, as paths under OPTIONS_DIR
DEMO_PRETRAIN, DEMO_JOINT = 'demo/pretrain.yml', 'demo/joint.yml'
# where the demo data is made and read, relative to the working directory
DEMO_DATA = osp.join('datasets', 'demo')
DEMO_VAL = osp.join(DEMO_DATA, 'val')


def option_path(name):
    """The path of this repository's option file ``name`` (a path under ``options/``)."""
    return osp.join(OPTIONS_DIR, name)
