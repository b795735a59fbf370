"""``python -m cnlrn_arch.train -opt options/joint.yml``: same as ``basicsr train``."""

import sys

from cnlrn_arch.training.pipeline import run_entry_point

if __name__ == '__main__':
    run_entry_point('train', sys.argv[1:], 'python -m cnlrn_arch.train')
