"""How long the ranks of a distributed run wait for each other in a collective before the job is aborted.

torch's default, 10 minutes, is shorter than rank 0's validation of Val300 with
x8 self-ensemble, or a first ``torch.compile`` with max-autotune, while the
other ranks wait in the next collective. ``dist_params: {timeout_minutes: M}``
sets it; 60 by default.
"""

from typing import Any

DIST_TIMEOUT_MINUTES = 60


def dist_timeout_minutes(opt: dict[str, Any]) -> float:
    """``dist_params:timeout_minutes`` of the options ``opt``, else DIST_TIMEOUT_MINUTES."""
    return (opt.get('dist_params') or {}).get('timeout_minutes', DIST_TIMEOUT_MINUTES)
