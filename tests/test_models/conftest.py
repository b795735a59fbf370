"""Fixtures of the model and speed-option tests."""

import cv2
import numpy as np
import pytest
import torch

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS


@pytest.fixture(scope='module')
def infer_setup(tmp_path_factory):
    """A folder with a tiny CNLRN's weights (w.pth), its option file (tiny.yml) and a 12x20 image (x.png)."""
    root = tmp_path_factory.mktemp('infer')
    torch.manual_seed(0)
    torch.save({'params': CNLRN(**TINY_CNLRN_ARGS).state_dict()}, root / 'w.pth')
    (root / 'tiny.yml').write_text(f'network_g: {TINY_CNLRN}\n')
    image = np.random.default_rng(0).integers(0, 255, (12, 20, 3), endpoint=True, dtype=np.uint8)
    cv2.imwrite(str(root / 'x.png'), image)
    return root
