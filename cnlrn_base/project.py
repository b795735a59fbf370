"""Names the whole project shares, spelled once: the shipped files, the demo's files, the scale."""

from importlib.resources import files
from os import path as osp

# every network, data set and tool here super-resolves x4, as REDS' LR frames are 1/4 of the HR
SCALE = 4
# the LMDB / validation folder suffix of each image of a (sharp HR, blurry LR, sharp LR) triple
TRIPLE_SETS = ('sharp', 'blur_bicubic_X4', 'sharp_bicubic_X4')


def shipped_file(name):
    """The path of ``name``, a file the commands read that ships as this package's data (see setup.py).

    In a clone it is the file where the repository keeps it (the package holds a link to it), in an installed wheel
    the copy inside the package.
    """
    return osp.realpath(files(__package__).joinpath(name))


OPTIONS_DIR = shipped_file('options')
DEMO_CHECKPOINT = shipped_file('CNLRN_demo.pth')
# the release's outputs for a small configuration (tests/data/), which gpu-check compares too
SMALL_FIXTURE = shipped_file('cnlrn_small_fixture.pt')
# option files of the demo, as paths under OPTIONS_DIR
DEMO_PRETRAIN, DEMO_JOINT = 'demo/pretrain.yml', 'demo/joint.yml'
# where the demo data is made and read, relative to the working directory
DEMO_DATA = osp.join('datasets', 'demo')
DEMO_VAL = osp.join(DEMO_DATA, 'val')


def option_path(name):
    """The path of the project's option file ``name`` (a path under ``options/``), in a clone or an installed wheel."""
    return osp.join(OPTIONS_DIR, name)
