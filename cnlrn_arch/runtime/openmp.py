"""OpenMP's wait policy for torch's CPU threads: passive, so that a busy machine does not stall every operator.

torch's CPU operators run on OpenMP (libgomp), whose threads by default spin
for a while at the end of each parallel region, waiting for the next. CNLRN
runs about 1,500 such regions a forward. Where other work shares the cores
(CI, a second job, a desktop), a spinning thread holds a core the thread it
waits for needs, and every region pays. Measured on 2 cores (AMD EPYC),
median of 3, libgomp's default spinning against passive:

=====================================  ===========  ==========  ========  =========
released CNLRN, 2 threads              busy: spin   busy: pass  idle: spin idle: pass
=====================================  ===========  ==========  ========  =========
inference, one 90x160 frame            17.6 s       10.9 s      5.7 s     5.8 s
training step, batch 2 x LR 64x64      35.0 s       17.4 s      8.6 s     9.0 s
training step, batch 2 x LR 16x16      4.9 s        2.6 s       1.1 s     1.6 s
=====================================  ===========  ==========  ========  =========

(busy: two CPU-bound processes beside it; onnxruntime, whose pool does not
spin, took 10.0-12.4 s for the busy frame.) On an idle machine passive waits
cost little at real sizes, and 40% on the tiny steps of tests.

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it, so this takes
effect only before ``import torch``: importing this module sets it, and
``cnlrn_arch`` imports it first (every command imports ``cnlrn_arch`` before
torch); a user's own ``OMP_WAIT_POLICY`` is kept.
"""

import os
import sys

WAIT_POLICY = 'PASSIVE'


def use_passive_wait_policy() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children; True if it takes effect.

    Left alone when the user chose a policy, or when torch (and with it
    libgomp) is already loaded and would not read it.
    """
    if 'OMP_WAIT_POLICY' in os.environ or 'torch' in sys.modules:
        return False
    os.environ['OMP_WAIT_POLICY'] = WAIT_POLICY
    return True


use_passive_wait_policy()
