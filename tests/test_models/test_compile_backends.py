"""torch.compile with the backends users get: AOTAutograd (``aot_eager``) and inductor, not only ``eager``.

Through ``cnlrn infer --compile BACKEND`` and through a model's ``speed: {compile: {backend}}`` in a
training step (forward, backward, update). Inductor generates and compiles C++ on the CPU, so its
tests need a C++ compiler (gcc is on the development and the CI machines); all of these take
seconds to minutes of compiling, hence the slow marker.
"""

import math
import shutil

import numpy as np
import pytest
import torch
from basicsr.models import build_model

from tests.helpers import make_opt, tiny_infer_output

pytestmark = pytest.mark.slow

BACKENDS = [
    'aot_eager',
    pytest.param(
        'inductor',
        marks=pytest.mark.skipif(shutil.which('g++') is None, reason='inductor compiles C++ on the CPU: no g++ found'),
    ),
]
# float32 graphs that fuse and reorder arithmetic (inductor's generated kernels); measured differences about 1e-7
ATOL = 1e-4


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: dynamo's caches (and their recompile limits) are per process."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize('backend', BACKENDS)
def test_infer_compiled_matches_plain(infer_setup, backend):
    plain = tiny_infer_output(infer_setup, 'plain')
    compiled = tiny_infer_output(infer_setup, backend, '--compile', backend)
    assert compiled.shape == plain.shape == (48, 80, 3)
    assert np.abs(compiled - plain).max() <= 1  # float32 rounding at a quantization boundary


def trained_once(speed):
    """Output, losses and gradients of a tiny CNLRNModel's first training step (inference is cnlrn infer's test)."""
    torch.manual_seed(0)
    model = build_model(make_opt(speed=speed))
    torch.manual_seed(1)
    gt = torch.rand(1, 3, 32, 32)
    model.feed_data(dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt))
    model.optimize_parameters(1)
    grads = {k: p.grad.clone() for k, p in model.net_g.named_parameters()}
    return model.output.detach().clone(), model.get_current_log(), grads


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_model_trains_through_the_compile_backend(backend):
    output, log, grads = trained_once(None)
    compiled_output, compiled_log, compiled_grads = trained_once(dict(compile=dict(backend=backend)))
    assert torch.allclose(compiled_output, output, atol=ATOL, rtol=0)
    assert compiled_log.keys() == log.keys()
    assert all(math.isclose(compiled_log[k], log[k], abs_tol=ATOL) for k in log)
    assert compiled_grads.keys() == grads.keys()
    assert all(torch.allclose(compiled_grads[k], grads[k], atol=ATOL, rtol=1e-3) for k in grads)
