"""What a probe of ``cnlrn gpu-check`` hands back: its figures and the checks that did not hold."""

from __future__ import annotations

import json
import math

from cnlrn_tools.gpu_check.step_runner import RESULT_PREFIX, Checks


class Findings(Checks):
    """Figures and failed checks of a probe; a failed check is recorded and the probe goes on measuring."""

    def result_line(self) -> str:
        """The probe's last output line, read by :meth:`~.runner.StepContext.probe`."""
        return RESULT_PREFIX + json.dumps({'figures': self.figures, 'failures': self.failures}, default=str)


def rounded(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits, for the report (inf and nan kept)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
