"""Running the steps of ``cnlrn gpu-check``: each with its own timeout under one overall deadline.

A step is a function of a :class:`StepContext` that starts commands (the
project's console scripts, or a probe: ``python -m cnlrn_tools.gpu_check.probes``)
and checks what they did. Its result is one of:

* ``pass``;
* ``fail``: a command failed, a check did not hold, or the step ran past its own timeout;
* ``skipped``: CUDA-only on a run without CUDA, or a step it needs did not pass;
* ``not run``: the overall deadline came before the step started, or cut it short.

Steps run several at a time (they mostly wait on processes); an
``exclusive`` step (a timing) runs alone, with every CPU thread, except in
a dry run, whose timings mean nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from cnlrn_tools.gpu_check.modes import Mode

PASS, FAIL, SKIPPED, NOT_RUN = 'pass', 'fail', 'skipped', 'not run'
# a step is not started with less than this left before the deadline
MIN_START_S = 5.0
LOG_TAIL_LINES = 30
# the last line of a probe's output: this, then {"figures": {...}, "failures": [...]}
RESULT_PREFIX = 'GPU_CHECK_RESULT '
# launcher variables of an enclosing job: each step that launches sets its own
LAUNCHER_VARIABLES = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


class StepFailed(Exception):
    """A command of a step failed, or a check that the rest of the step depends on did not hold."""


class StepTimedOut(Exception):
    """A command ran past the time left to its step."""


@dataclass(frozen=True)
class Step:
    """One step: ``run(ctx)`` starts its commands and checks them.

    Attributes:
        name (str): short, unique; names its log file.
        covers (str): one line on what it exercises.
        run (Callable[[StepContext], None]): the step; raises StepFailed, or records soft failures with ctx.expect.
        timeout_s (float): its own limit, in seconds.
        needs (tuple[str, ...]): earlier steps that must pass first.
        cuda_only (bool): skipped without CUDA.
        exclusive (bool): a timing: runs alone, except in a dry run (see :meth:`Check.alone`).
    """

    name: str
    covers: str
    run: Callable[[StepContext], None]
    timeout_s: float
    needs: tuple[str, ...] = ()
    cuda_only: bool = False
    exclusive: bool = False


@dataclass
class StepResult:
    """What one step did; see :mod:`.report` for how it is written."""

    name: str
    covers: str
    status: str
    reason: str = ''
    wall_s: float = 0.0
    commands: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    log: str = ''
    log_tail: str = ''


@dataclass
class Check:
    """One run of the check: its folders, mode, and what steps hand on to later steps.

    Attributes:
        out (str): the output folder.
        work (str): where the steps' commands run (their data, experiments and results).
        logs (str): one log file per step.
        mode (Mode): devices and sizes.
        cuda (bool): CUDA is available (and used, unless a dry run).
        shared (dict[str, Any]): values a step leaves for later ones (data paths, outputs).
        results (dict[str, StepResult]): the finished steps' results, by name.
    """

    out: str
    work: str
    logs: str
    mode: Mode
    cuda: bool
    shared: dict[str, Any] = field(default_factory=dict)
    results: dict[str, StepResult] = field(default_factory=dict)
    interrupted: bool = False
    contexts: list[StepContext] = field(default_factory=list)
    # held while a command starts and while an interruption stops them all: none slips through
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alone(self, step: Step) -> bool:
        """Whether ``step`` runs alone and with every CPU thread: a timing, on the GPU run."""
        return step.exclusive and not self.mode.dry_run

    def interrupt(self) -> None:
        """Kill every command the steps started (their own process groups miss the terminal's Ctrl-C); start none."""
        with self.lock:
            self.interrupted = True
            for ctx in self.contexts:
                ctx.stop_all()


class Checks:
    """Figures and soft checks: a check that fails is recorded, and the work goes on."""

    def __init__(self) -> None:
        """Start with no figures and no failures."""
        self.figures: dict[str, Any] = {}
        self.failures: list[str] = []

    def expect(self, condition: bool, message: str) -> bool:
        """Record ``message`` as a failure unless ``condition``; return ``condition``.

        Args:
            condition (bool): what should hold.
            message (str): what it means when it does not.
        """
        if not condition:
            self.failures.append(message)
        return condition

    def timing(self, condition: bool, message: str, device: str) -> bool:
        """:meth:`expect` for a check of measured time: on a GPU it fails, on the CPU it is a finding only.

        A CPU run shares its cores with whatever else the machine does, so a
        time there never decides a check's outcome; the finding is kept in
        the figures ('timing findings') for the report to show.

        Args:
            condition (bool): what should hold.
            message (str): what it means when it does not.
            device (str): 'cuda' or 'cpu'.
        """
        if device == 'cuda':
            return self.expect(condition, message)
        if not condition:
            self.figures.setdefault('timing findings', []).append(message)
        return condition


class StepContext(Checks):
    """What a step function works with: commands under its time limit, its log, figures and soft checks."""

    def __init__(self, check: Check, step: Step, end: float) -> None:
        """Start a step's context.

        Args:
            check (Check): the run.
            step (Step): the step.
            end (float): ``time.monotonic()`` by which the step must be done.
        """
        super().__init__()
        self.check = check
        self.mode = check.mode
        self.step = step
        self.end = end
        self.commands: list[dict[str, Any]] = []
        self.log_path = os.path.join(check.logs, f'{step.name}.log')
        self.alone = check.alone(step)
        check.contexts.append(self)
        self._started: dict[subprocess.Popen, tuple[dict[str, Any], float]] = {}  # -> (its command record, start)

    # -- commands ---------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a command: this one without launcher variables, plus ``extra``.

        torch's threads are limited to the mode's (tiny tensors), except for a step that runs alone.

        Args:
            **extra (str): variables to set.
        """
        env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
        env['PYTHONUNBUFFERED'] = '1'
        if not self.alone:
            env['OMP_NUM_THREADS'] = self.mode.threads
        return env | extra

    def _popen(self, argv: list[str], env: dict[str, str] | None, stdout: Any) -> subprocess.Popen:
        record = {'command': subprocess.list2cmdline(argv), 'exit_code': None, 'wall_s': None}
        with self.check.lock:
            if self.check.interrupted:
                raise StepFailed('interrupted')
            self.commands.append(record)
            proc = subprocess.Popen(
                argv,
                cwd=self.check.work,
                env=env or self.env(),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: a timeout stops its children too
            )
            self._started[proc] = record, time.monotonic()
        return proc

    def _finish(self, proc: subprocess.Popen) -> None:
        record, started = self._started[proc]
        record.update(exit_code=proc.returncode, wall_s=round(time.monotonic() - started, 2))

    def _command(self, proc: subprocess.Popen) -> str:
        return self._started[proc][0]['command']

    def left(self) -> float:
        """Seconds left to this step."""
        return self.end - time.monotonic()

    def run_all(self, argvs: list[list[str]], env: dict[str, str] | None = None, check: bool = True) -> list[str]:
        """Run the commands ``argvs`` side by side; their outputs (stdout and stderr), in order.

        Args:
            argvs (list[list[str]]): the commands, run in the work folder.
            env (dict[str, str] | None): their environment; None: :meth:`env`.
            check (bool): a non-zero exit status fails the step.

        Raises:
            StepFailed: with ``check``, one exited non-zero (the message ends with its last lines of output).
            StepTimedOut: they ran past the time left to the step.
        """
        procs = [self._popen(argv, env, subprocess.PIPE) for argv in argvs]
        outputs = []
        try:
            for proc in procs:
                outputs.append(proc.communicate(timeout=max(0.0, self.left()))[0])
                self._finish(proc)
        except subprocess.TimeoutExpired:
            late = procs[len(outputs)]
            self.stop_all()
            outputs += [proc.communicate()[0] for proc in procs[len(outputs) :]]
            raise StepTimedOut(f'{self._command(late)} ran past the time left to the step') from None
        finally:
            self._log_outputs(procs, outputs)
        for proc, output in zip(procs, outputs):
            if check and proc.returncode:
                raise StepFailed(f'exit code {proc.returncode}: {self._command(proc)}\n{last_lines(output)}')
        return outputs

    def run(self, argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> str:
        """Run one command; its output. See :meth:`run_all`.

        Args:
            argv (list[str]): the command.
            env (dict[str, str] | None): its environment; None: :meth:`env`.
            check (bool): a non-zero exit status fails the step.
        """
        return self.run_all([argv], env, check)[0]

    def _log_outputs(self, procs: list[subprocess.Popen], outputs: list[str]) -> None:
        with open(self.log_path, 'a', encoding='utf-8') as log:
            for proc, output in zip(procs, outputs):
                log.write(f'$ {self._command(proc)}\n{output}\n[exit code {proc.returncode}]\n\n')

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a command in the background (to be stopped with :meth:`kill`), its output in the step's log.

        Args:
            argv (list[str]): the command.
            env (dict[str, str] | None): its environment; None: :meth:`env`.
        """
        with open(self.log_path, 'a', encoding='utf-8') as log:
            log.write(f'$ {subprocess.list2cmdline(argv)}  (in the background)\n')
            log.flush()
            return self._popen(argv, env, log)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a command started by :meth:`start`, with the processes it started.

        Args:
            proc (subprocess.Popen): what :meth:`start` returned.
        """
        _kill_group(proc)
        proc.wait()
        self._finish(proc)
        with open(self.log_path, 'a', encoding='utf-8') as log:
            log.write(f'\n[killed, exit code {proc.returncode}]\n\n')

    def stop_all(self) -> None:
        """Kill whatever this step started and is still running."""
        for proc in self._started:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
                self._finish(proc)

    def probe(self, name: str, **args: Any) -> dict[str, Any]:
        """Run probe ``name`` of :mod:`.probes` in a fresh interpreter; add its figures and failures to the step's.

        Args:
            name (str): the probe.
            **args (Any): its JSON arguments; ``device`` defaults to the mode's.

        Returns:
            dict[str, Any]: its figures.
        """
        args.setdefault('device', self.mode.device)
        argv = [sys.executable, '-m', 'cnlrn_tools.gpu_check.probes', name, json.dumps(args)]
        output = self.run(argv, check=False)
        lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
        result = json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else {'figures': {}, 'failures': []}
        self.figures.update(result['figures'])
        self.failures += result['failures']
        exit_code = self.commands[-1]['exit_code']
        if exit_code and not result['failures']:  # it crashed: the traceback is the reason
            raise StepFailed(f'probe {name}: exit code {exit_code}\n{last_lines(output)}')
        return result['figures']

    # -- checks -----------------------------------------------------------------------------------

    def expect_in(self, output: str, *fragments: str) -> None:
        """Every fragment must appear in a command's ``output``; the missing ones stop the step.

        Args:
            output (str): a command's output.
            *fragments (str): what it must contain.
        """
        missing = [f for f in fragments if f not in output]
        if missing:
            raise StepFailed(f'not in the output: {", ".join(map(repr, missing))}')

    def wait_until(self, condition: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
        """Poll ``condition`` until it holds, while ``proc`` (from :meth:`start`) runs.

        Args:
            condition (Callable[[], bool]): what to wait for.
            proc (subprocess.Popen): the command that should bring it about.
            what (str): the condition in words, for the messages.

        Raises:
            StepFailed: ``proc`` ended first.
            StepTimedOut: the step's time ran out first.
        """
        while not condition():
            if proc.poll() is not None:
                raise StepFailed(f'{self._command(proc)} ended (exit code {proc.returncode}) before {what}')
            if self.left() <= 0:
                raise StepTimedOut(f'waiting for {what}')
            time.sleep(0.05)

    def path(self, *parts: str) -> str:
        """A path under the work folder."""
        return os.path.join(self.check.work, *parts)

    def script(self, name: str) -> str:
        """The console script ``name`` (basicsr, cnlrn, torchrun) installed beside this interpreter."""
        return os.path.join(os.path.dirname(sys.executable), name)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


def last_lines(text: str, lines: int = 8) -> str:
    """The last ``lines`` lines of a command's output: where its error is.

    Args:
        text (str): the output.
        lines (int): how many lines.
    """
    return '\n'.join(text.strip().splitlines()[-lines:])


def log_tail(path: str) -> str:
    """The last LOG_TAIL_LINES lines of a step's log ('' when it wrote none).

    Args:
        path (str): the log file.
    """
    if not os.path.isfile(path):
        return ''
    with open(path, encoding='utf-8', errors='replace') as f:
        return last_lines(f.read(), LOG_TAIL_LINES)


def run_step(check: Check, step: Step, timeout: float, cut_by_deadline: bool) -> StepResult:
    """Run ``step`` within ``timeout`` seconds; its result.

    Args:
        check (Check): the run.
        step (Step): the step.
        timeout (float): seconds it may take.
        cut_by_deadline (bool): ``timeout`` is what the overall deadline leaves, shorter than the step's own:
            running past it is 'not run', else 'fail'.
    """
    ctx = StepContext(check, step, time.monotonic() + timeout)
    start = time.monotonic()
    status, reason = PASS, ''
    try:
        step.run(ctx)
    except StepTimedOut as err:
        if cut_by_deadline:
            status, reason = NOT_RUN, f'cut short by the overall deadline after {timeout:.0f} s ({err})'
        else:
            status, reason = FAIL, f'timed out after its {timeout:.0f} s ({err})'
    except StepFailed as err:
        status, reason = FAIL, str(err)
    except Exception as err:  # a bug of the step itself: reported with its traceback, the other steps go on
        status, reason = FAIL, f'{type(err).__name__}: {err}'
        with open(ctx.log_path, 'a', encoding='utf-8') as log:
            log.write(traceback.format_exc())
    finally:
        ctx.stop_all()
    if status == PASS and ctx.failures:
        status, reason = FAIL, '; '.join(ctx.failures)
    elif status == FAIL and ctx.failures:
        reason = '; '.join([reason, *ctx.failures])
    return StepResult(
        step.name,
        step.covers,
        status,
        reason,
        round(time.monotonic() - start, 2),
        ctx.commands,
        ctx.figures,
        ctx.log_path if os.path.isfile(ctx.log_path) else '',
        log_tail(ctx.log_path),
    )


def _decided(step: Step, check: Check) -> StepResult | None:
    """The result of a step that is not to run (no CUDA, a need that did not pass); None when it can run.

    Its needs must be finished.
    """
    if step.cuda_only and not (check.cuda and not check.mode.dry_run):
        return StepResult(step.name, step.covers, SKIPPED, 'no CUDA' if not check.cuda else 'dry run')
    for need in step.needs:
        status = check.results[need].status
        if status == NOT_RUN:
            return StepResult(step.name, step.covers, NOT_RUN, f'needs {need}, which was not run')
        if status != PASS:
            verb = 'failed' if status == FAIL else 'was skipped'
            return StepResult(step.name, step.covers, SKIPPED, f'needs {need}, which {verb}')
    return None


def run_steps(
    steps: list[Step], check: Check, deadline_s: float, report: Callable[[StepResult, float], None]
) -> list[StepResult]:
    """Run ``steps`` in their order, ``check.mode.parallel`` at a time, all within ``deadline_s``.

    A step starts once the steps it needs are finished, and not before the
    exclusive steps ahead of it; an exclusive step waits until nothing runs.

    Args:
        steps (list[Step]): the steps; each one's needs come before it.
        check (Check): the run; ``check.results`` fills as steps finish.
        deadline_s (float): seconds from now by which everything must be done.
        report (Callable[[StepResult, float], None]): called with each result and the seconds since the start.

    Returns:
        list[StepResult]: one per step, in the order of ``steps``.
    """
    names = [s.name for s in steps]
    for i, step in enumerate(steps):
        late = [n for n in step.needs if n not in names[:i]]
        if late:
            raise ValueError(f'step {step.name} needs {late}, which do not come before it')
    start = time.monotonic()

    def finish(result):
        check.results[result.name] = result
        report(result, time.monotonic() - start)

    with ThreadPoolExecutor(check.mode.parallel) as pool:
        try:
            _schedule(steps, check, deadline_s, pool, finish)
        except KeyboardInterrupt:
            check.interrupt()  # the threads' commands die, so they end, and the pool with them
            raise
    return [check.results[name] for name in names]


def _schedule(
    steps: list[Step],
    check: Check,
    deadline_s: float,
    pool: ThreadPoolExecutor,
    finish: Callable[[StepResult], None],
) -> None:
    """The loop of :func:`run_steps`: start what may start, then wait for a step to finish."""
    deadline = time.monotonic() + deadline_s
    pending = list(steps)
    running = {}  # future -> step
    while pending or running:
        for step in list(pending):
            if any(need not in check.results for need in step.needs):
                if check.alone(step):
                    break
                continue
            decided = _decided(step, check)
            if decided is None and deadline - time.monotonic() < MIN_START_S:
                decided = StepResult(step.name, step.covers, NOT_RUN, f'the {deadline_s:.0f} s deadline came first')
            if decided is not None:
                pending.remove(step)
                finish(decided)
                continue
            busy = any(check.alone(s) for s in running.values()) or len(running) >= check.mode.parallel
            if busy or (check.alone(step) and running):
                break
            pending.remove(step)
            left = deadline - time.monotonic()
            timeout = min(step.timeout_s, left)
            running[pool.submit(run_step, check, step, timeout, left < step.timeout_s)] = step
            if check.alone(step):
                break
        if running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                del running[future]
                finish(future.result())
