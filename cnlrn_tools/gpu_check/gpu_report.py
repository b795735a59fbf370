"""``gpu_check.json`` and ``gpu_check.md``: per step its commands, exit codes, status, wall time, figures, log tail."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from cnlrn_arch.reports.pictures import markdown_table
from cnlrn_tools.gpu_check.step_runner import FAIL, NOT_RUN, PASS, SKIPPED, StepResult

STATUSES = (PASS, FAIL, SKIPPED, NOT_RUN)


def summary(results: list[StepResult]) -> dict[str, int]:
    """How many steps ended in each status.

    Args:
        results (list[StepResult]): one per step.
    """
    return {status: sum(r.status == status for r in results) for status in STATUSES}


def exit_code(results: list[StepResult]) -> int:
    """1 when a step failed; 3 when none failed but the deadline left some not run; else 0.

    Args:
        results (list[StepResult]): one per step.
    """
    counts = summary(results)
    if counts[FAIL]:
        return 1
    return 3 if counts[NOT_RUN] else 0


def _figure_lines(name: str, value: Any) -> list[str]:
    """Markdown of one figure: a table for a mapping of rows (e.g. backend -> errors), else one list item."""
    if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
        columns = list(dict.fromkeys(k for v in value.values() if isinstance(v, dict) for k in v))
        rows = [
            [key, *(str(row.get(c, '')) for c in columns), '']
            if isinstance(row, dict)
            else [key, *[''] * len(columns), str(row)]
            for key, row in value.items()
        ]
        return ['', f'{name}:', '', *markdown_table(['', *columns, 'note'], rows), '']
    if isinstance(value, dict):
        value = ', '.join(f'{k}: {v}' for k, v in value.items())
    return [f'- {name}: {value}']


def _step_section(result: StepResult) -> list[str]:
    lines = [f'## {result.name}: {result.status}', '', result.covers, '']
    if result.reason:
        lines += ['```', result.reason, '```', '']
    lines.append(f'Wall time {result.wall_s:.1f} s.' + (f' Log: `{result.log}`' if result.log else ''))
    if result.commands:
        rows = [[f'`{c["command"]}`', str(c['exit_code']), f'{c["wall_s"] or 0:.1f}'] for c in result.commands]
        lines += [''] + markdown_table(['command', 'exit code', 'wall (s)'], rows)
    if result.figures:
        lines.append('')
        for name, value in result.figures.items():
            lines += _figure_lines(name, value)
    if result.status != PASS and result.log_tail:
        lines += ['', 'Log tail:', '', '```', result.log_tail, '```']
    return lines + ['']


def markdown(run: dict[str, Any], results: list[StepResult]) -> str:
    """gpu_check.md: the run, a table of the steps, then each step's commands, figures and (unless passed) log tail.

    Args:
        run (dict[str, Any]): see :func:`write_reports`.
        results (list[StepResult]): one per step.
    """
    counts = ', '.join(f'{n} {status}' for status, n in run['summary'].items())
    lines = [
        '# GPU acceptance check',
        '',
        f'Command: `{run["command"]}`',
        '',
        f'{run["mode"]} on {run["device"]}; torch {run["torch"]}; {run["wall_s"]:.0f} s of a {run["deadline_s"]:.0f} s '
        f'deadline, {run["parallel"]} steps at a time. Result: **{run["verdict"]}** ({counts}; exit code '
        f'{run["exit_code"]}).',
        '',
    ]
    rows = [[r.name, r.status, f'{r.wall_s:.1f}', r.reason.splitlines()[0] if r.reason else ''] for r in results]
    lines += markdown_table(['step', 'status', 'wall (s)', 'reason'], rows) + ['']
    for result in results:
        lines += _step_section(result)
    return '\n'.join(lines)


def write_reports(out: str, run: dict[str, Any], results: list[StepResult]) -> tuple[str, str]:
    """Write ``out``/gpu_check.json and ``out``/gpu_check.md; return their paths.

    Args:
        out (str): the output folder.
        run (dict[str, Any]): the run's fields (command, mode, device, torch, wall_s, deadline_s,
            parallel, summary, exit_code, verdict).
        results (list[StepResult]): one per step.
    """
    json_path, md_path = os.path.join(out, 'gpu_check.json'), os.path.join(out, 'gpu_check.md')
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(dict(run, steps=[asdict(r) for r in results]), f, indent=1, default=str)
    with open(md_path, 'w', encoding='utf-8') as f:
        f.write(markdown(run, results))
    return json_path, md_path
