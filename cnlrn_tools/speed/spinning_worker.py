"""PyTorch as it ran before the passive OpenMP policy, in a process of its own, for ``cnlrn bench --onnxruntime``.

libgomp reads its wait policy once per process, so the spinning threads of
before (libgomp's default spin count) cannot run in the comparing process;
this worker holds the same network and times one forward per size it reads
from stdin (``HEIGHT WIDTH``), printing the seconds, so that it takes turns
with the other runtimes. ``SPINNING_ENV`` is what its environment adds.
"""

import json
import sys
import time

import torch

from cnlrn_arch.archs.cnlrn_arch import CNLRN

# libgomp's own default spin count: it wins over the passive policy that importing cnlrn_arch sets
SPINNING_ENV = {'GOMP_SPINCOUNT': '300000'}


def main() -> None:
    config, threads = json.loads(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = CNLRN(**config).eval()
    for line in sys.stdin:
        height, width = map(int, line.split())
        x = torch.rand(1, 3, height, width)
        with torch.inference_mode():
            start = time.perf_counter()
            net(x)
            print(time.perf_counter() - start, flush=True)


if __name__ == '__main__':
    main()
