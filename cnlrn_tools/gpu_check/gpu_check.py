"""``cnlrn gpu-check``: one command that exercises every CUDA path of the project on one GPU.

In at most --deadline-s seconds (default 480) it checks the small fixture
against the release on the GPU (IEEE float32, TF32, channels_last, bf16,
fp16); the released network under each SDPA backend; the training pipeline
on tiny data made on the spot, through the project's own option files with
only sizes, iterations and devices changed (pre-training with the CUDA
prefetcher, joint training in bf16 and channels_last, a killed run resumed,
fp16 with its loss scaler resumed, torchrun with NCCL, the slurm launcher,
two deterministic runs, basicsr test plain and x8 against the CPU);
cnlrn infer's flags against its plain output; and the speed: cnlrn bench,
training steps at the release's batch 32 with the paper's schedule at that
speed, and the data loader against what training consumes.

Each step has its own timeout under the overall deadline; what the deadline
cuts is reported as "not run", and --steps runs chosen steps (with the steps
they need) in a later GPU window. Without CUDA, or with --dry-run, the same
steps run on the CPU with tiny sizes (gloo instead of NCCL) and the
CUDA-only steps are reported as skipped: CI runs it so, to keep the check
working between GPU windows.

Writes OUT/gpu_check.json and OUT/gpu_check.md (per step: commands, exit
codes, status, wall time, figures, log tail), OUT/logs/<step>.log, and
works in OUT/work. Exit status: 0 all passed (or skipped), 1 a step failed,
3 none failed but the deadline left steps not run.
"""

from __future__ import annotations

import os
import shutil
import time

import torch

from cnlrn_base.command_defaults import GPU_CHECK_DEADLINE_S
from cnlrn_base.errors import UserError
from cnlrn_tools.gpu_check.gpu_report import exit_code, summary, write_reports
from cnlrn_tools.gpu_check.modes import dry_mode, gpu_mode
from cnlrn_tools.gpu_check.step_runner import PASS, Check, StepResult, run_steps
from cnlrn_tools.gpu_check.steps import STEPS

# written into OUT, so that a later run may clear the folders it made there, and no others
MARKER = '.gpu_check'


def prepare_out(out: str) -> tuple[str, str]:
    """Create ``out``; clear the work and log folders of an earlier check there; return (work, logs).

    Raises:
        UserError: ``out`` holds work/ or logs/ that no earlier check made.
    """
    work, logs = os.path.join(out, 'work'), os.path.join(out, 'logs')
    ours = os.path.isfile(os.path.join(out, MARKER))
    for folder in (work, logs):
        if os.path.exists(folder):
            if not ours:
                raise UserError(f'{folder} exists and was not made by cnlrn gpu-check: choose another --out')
            shutil.rmtree(folder)
    os.makedirs(work)
    os.makedirs(logs)
    with open(os.path.join(out, MARKER), 'w', encoding='utf-8') as f:
        f.write('made by cnlrn gpu-check, which clears work/ and logs/ here when run again\n')
    return work, logs


def selected(names: list[str] | None):
    """The steps named (all for None), with the steps they need, in the order of STEPS."""
    if names is None:
        return list(STEPS)
    known = {step.name: step for step in STEPS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f'--steps: unknown {", ".join(unknown)}; known: {", ".join(known)}')
    wanted = set(names)
    for step in reversed(STEPS):
        if step.name in wanted:
            wanted.update(step.needs)
    return [step for step in STEPS if step.name in wanted]


def print_result(result: StepResult, elapsed: float) -> None:
    reason = f'  {result.reason.splitlines()[0]}' if result.reason and result.status != PASS else ''
    print(f'[{elapsed:6.1f} s] {result.status:8s} {result.name} ({result.wall_s:.1f} s){reason}', flush=True)


def gpu_check(
    out: str,
    dry_run: bool = False,
    deadline_s: float = GPU_CHECK_DEADLINE_S,
    steps: list[str] | None = None,
    command: str = 'cnlrn gpu-check',
) -> int:
    """Run the check's steps, write its reports to ``out``; return the exit status (see the module docstring).

    Args:
        out (str): the output folder.
        dry_run (bool): run on the CPU with tiny sizes; also chosen when CUDA is not available.
        deadline_s (float): seconds within which every step must be done.
        steps (list[str] | None): the steps to run (with those they need); None for all.
        command (str): the command line, recorded in the reports.
    """
    chosen = selected(steps)
    cuda = torch.cuda.is_available()
    if not (dry_run or cuda):
        print('cnlrn gpu-check: CUDA is not available here: running the dry run on the CPU', flush=True)
    mode = dry_mode() if dry_run or not cuda else gpu_mode()
    work, logs = prepare_out(out)
    check = Check(out=out, work=work, logs=logs, mode=mode, cuda=cuda)
    start = time.monotonic()
    results = run_steps(chosen, check, deadline_s, print_result)
    counts = summary(results)
    code = exit_code(results)
    run = {
        'command': command,
        'mode': 'dry run' if mode.dry_run else 'GPU run',
        # from the environment step: this process leaves the GPU to the steps' processes
        'device': check.results['environment'].figures.get('gpu', 'the GPU') if mode.device == 'cuda' else 'the CPU',
        'torch': torch.__version__,
        'wall_s': round(time.monotonic() - start, 1),
        'deadline_s': deadline_s,
        'parallel': mode.parallel,
        'summary': counts,
        'exit_code': code,
        'verdict': {0: 'PASS', 1: 'FAIL', 3: 'INCOMPLETE'}[code],
    }
    paths = write_reports(out, run, results)
    print(f'{run["verdict"]}: ' + ', '.join(f'{n} {s}' for s, n in counts.items()) + f' in {run["wall_s"]:.0f} s')
    print('reports: ' + ' and '.join(paths))
    return code
