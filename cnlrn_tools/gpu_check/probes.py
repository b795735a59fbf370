"""``python -m cnlrn_tools.gpu_check.probes NAME JSON``: one probe of ``cnlrn gpu-check`` in a fresh interpreter.

A probe measures and checks inside Python (numerics in :mod:`.numerics`,
speed in :mod:`.performance`); a failed check is recorded and the probe
goes on, so one failure hides no other figure. The last output line is the
result (:meth:`~.findings.Findings.result_line`); the exit status is 1 when a
check failed.
"""

from __future__ import annotations

import json
import sys

from cnlrn_tools.gpu_check import numerics, performance
from cnlrn_tools.gpu_check.findings import Findings

PROBES = {
    'environment': numerics.environment,
    'data': numerics.data,
    'fixture': numerics.fixture,
    'fixture_tf32': numerics.fixture_tf32,
    'sdpa_backends': numerics.sdpa_backends,
    'train_speed': performance.train_speed,
    'loader': performance.loader,
}


def main(argv: list[str] | None = None) -> int:
    """Run the probe ``argv[0]`` with the JSON arguments ``argv[1]``; print its result line last.

    Args:
        argv (list[str] | None): NAME and JSON; None reads sys.argv.

    Returns:
        int: 1 when a check failed, else 0 (an exception propagates, after the result line).
    """
    name, args = (sys.argv[1:] if argv is None else argv)[:2]
    found = Findings()
    try:
        PROBES[name](json.loads(args), found)
    finally:
        print(found.result_line(), flush=True)
    return 1 if found.failures else 0


if __name__ == '__main__':
    sys.exit(main())
