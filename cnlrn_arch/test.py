"""``python -m cnlrn_arch.test -opt options/test_val300.yml``: same as ``basicsr test``."""

import sys

from cnlrn_arch.training.pipeline import run_entry_point

if __name__ == '__main__':
    run_entry_point('test', sys.argv[1:], 'python -m cnlrn_arch.test')
