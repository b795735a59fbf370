"""cnlrn gpu-check's runner, in-process on stand-in steps: each outcome reported as what it is, and the exit code.

Stand-in steps run ``python -c`` commands, so no test here waits on torch or basicsr starting.
"""

import dataclasses
import json
import signal
import sys
import time

import pytest

from cnlrn_cli.main import main
from cnlrn_tools.gpu_check import gpu_check as gpu_check_run
from cnlrn_tools.gpu_check.modes import dry_mode
from cnlrn_tools.gpu_check.step_runner import FAIL, NOT_RUN, PASS, SKIPPED, Check, Checks, Step, StepFailed, run_steps
from tests.helpers import exit_status


def python(code):
    return [sys.executable, '-c', code]


def passes(ctx):
    output = ctx.run(python('print("fine")'))
    ctx.expect_in(output, 'fine')
    ctx.figures['answer'] = 42


def exits_non_zero(ctx):
    ctx.run(python('import sys; print("bad news"); sys.exit(3)'))


def check_fails(ctx):
    ctx.run(python('pass'))
    ctx.expect(False, 'the output is off by 3 levels')
    ctx.figures['measured anyway'] = 1


def raises(ctx):
    raise StepFailed('a checkpoint is missing')


def sleeps(ctx):
    ctx.run(python('import time; time.sleep(30)'))


def check_run(tmp_path, steps, deadline_s=60, cuda=False):
    (tmp_path / 'work').mkdir(exist_ok=True)
    (tmp_path / 'logs').mkdir(exist_ok=True)
    check = Check(str(tmp_path), str(tmp_path / 'work'), str(tmp_path / 'logs'), dry_mode(), cuda)
    reported = []
    results = run_steps(steps, check, deadline_s, lambda result, elapsed: reported.append(result.name))
    assert sorted(reported) == sorted(s.name for s in steps)
    return {r.name: r for r in results}


def test_each_outcome_is_reported_as_what_it_is(tmp_path):
    steps = [
        Step('passes', 'a passing step', passes, 30),
        Step('exits_non_zero', 'a command fails', exits_non_zero, 30),
        Step('check_fails', 'a check fails', check_fails, 30),
        Step('raises', 'a check the rest depends on fails', raises, 30),
        Step('needs_a_failure', 'needs a failed step', passes, 30, ('exits_non_zero',)),
        Step('needs_a_pass', 'needs a passed step', passes, 30, ('passes',)),
        Step('cuda_only', 'a CUDA-only step', passes, 30, cuda_only=True),
    ]
    results = check_run(tmp_path, steps)
    assert {name: r.status for name, r in results.items()} == {
        'passes': PASS,
        'exits_non_zero': FAIL,
        'check_fails': FAIL,
        'raises': FAIL,
        'needs_a_failure': SKIPPED,
        'needs_a_pass': PASS,
        'cuda_only': SKIPPED,
    }
    assert results['passes'].figures == {'answer': 42}
    assert results['passes'].commands[0]['exit_code'] == 0
    failed = results['exits_non_zero']
    assert failed.reason.startswith('exit code 3: ') and 'bad news' in failed.reason
    assert failed.commands[0]['exit_code'] == 3 and 'bad news' in failed.log_tail
    assert results['check_fails'].reason == 'the output is off by 3 levels'
    assert results['check_fails'].figures == {'measured anyway': 1}
    assert results['raises'].reason == 'a checkpoint is missing'
    assert results['needs_a_failure'].reason == 'needs exits_non_zero, which failed'
    assert results['cuda_only'].reason == 'no CUDA'


def test_the_deadline_cuts_steps_to_not_run_and_a_step_past_its_own_timeout_fails(tmp_path):
    steps = [
        Step('own_timeout', 'sleeps past its own 1 s', sleeps, 1),
        Step('cut', 'sleeps past the deadline', sleeps, 60, exclusive=True),
        Step('after_the_deadline', 'starts when the deadline has come', passes, 60, exclusive=True),
        Step('needs_a_cut_step', 'needs a step the deadline cut', passes, 60, ('cut',)),
    ]
    mode = dataclasses.replace(dry_mode(), dry_run=False)  # exclusive steps one after another
    (tmp_path / 'work').mkdir()
    (tmp_path / 'logs').mkdir()
    check = Check(str(tmp_path), str(tmp_path / 'work'), str(tmp_path / 'logs'), mode, cuda=True)
    results = {r.name: r for r in run_steps(steps, check, 8, lambda result, elapsed: None)}
    assert results['own_timeout'].status == FAIL
    assert results['own_timeout'].reason.startswith('timed out after its 1 s')
    cut = results['cut']
    assert cut.status == NOT_RUN and cut.reason.startswith('cut short by the overall deadline')
    assert cut.commands[0]['exit_code'] < 0  # killed
    assert 5 < cut.wall_s < 10
    assert results['after_the_deadline'].status == NOT_RUN
    assert results['after_the_deadline'].reason == 'the 8 s deadline came first'
    assert results['needs_a_cut_step'].status == NOT_RUN


def test_a_step_needing_a_later_step_is_refused(tmp_path):
    with pytest.raises(ValueError, match="step first needs \\['second'\\]"):
        check_run(tmp_path, [Step('first', '', passes, 5, ('second',)), Step('second', '', passes, 5)])


@pytest.mark.parametrize(
    'steps, code, verdict',
    [
        ([Step('passes', 'passes', passes, 30)], 0, 'PASS'),
        ([Step('passes', 'passes', passes, 30), Step('check_fails', 'fails', check_fails, 30)], 1, 'FAIL'),
    ],
    ids=['pass', 'fail'],
)
def test_the_command_exits_non_zero_when_a_step_fails(tmp_path, monkeypatch, capsys, steps, code, verdict):
    monkeypatch.setattr(gpu_check_run, 'STEPS', steps)
    out = tmp_path / 'out'
    assert exit_status(main, ['gpu-check', '--dry-run', '--out', str(out)]) == code
    assert capsys.readouterr().out.splitlines()[-2].startswith(f'{verdict}: ')
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['exit_code'] == code and report['verdict'] == verdict
    assert report['mode'] == 'dry run'
    assert [s['name'] for s in report['steps']] == [s.name for s in steps]
    markdown = (out / 'gpu_check.md').read_text()
    assert f'Result: **{verdict}**' in markdown and '| passes | pass |' in markdown
    if code:
        assert '## check_fails: fail' in markdown and 'the output is off by 3 levels' in markdown


def test_steps_select_the_steps_they_need_and_unknown_names_are_one_line_errors(tmp_path, capsys):
    chosen = [s.name for s in gpu_check_run.selected(['test'])]
    assert chosen == ['data', 'pretrain', 'joint', 'test']
    assert exit_status(main, ['gpu-check', '--dry-run', '--out', str(tmp_path), '--steps', 'nope']) == 2
    assert 'cnlrn gpu-check: error: --steps: unknown nope; known: environment, data,' in capsys.readouterr().err


def test_an_out_folder_with_foreign_work_files_is_refused(tmp_path, capsys):
    (tmp_path / 'work').mkdir()
    assert exit_status(main, ['gpu-check', '--dry-run', '--out', str(tmp_path)]) == 2
    assert f'{tmp_path / "work"} exists and was not made by cnlrn gpu-check' in capsys.readouterr().err


def test_ctrl_c_kills_the_commands_of_the_steps_still_running(tmp_path):
    """The commands run in their own process groups, which the terminal's Ctrl-C does not reach."""
    (tmp_path / 'work').mkdir()
    (tmp_path / 'logs').mkdir()
    check = Check(str(tmp_path), str(tmp_path / 'work'), str(tmp_path / 'logs'), dry_mode(), cuda=False)
    steps = [Step('sleeps', 'sleeps 30 s', sleeps, 60), Step('passes', 'passes', passes, 60)]

    def interrupt_on_the_first_result(result, elapsed):
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_steps(steps, check, 60, interrupt_on_the_first_result)
    assert time.monotonic() - start < 15
    sleeping = next(ctx for ctx in check.contexts if ctx.step.name == 'sleeps')
    assert sleeping.commands[0]['exit_code'] == -signal.SIGKILL


def test_a_time_faster_than_its_floor_fails_on_a_gpu_and_is_a_finding_on_the_cpu():
    """A CPU shares its cores with other work, so a timing never decides a CPU run's outcome (issue 23)."""
    on_gpu, on_cpu = Checks(), Checks()
    message = 'joint fp32: faster than its FLOP floor, so the floor is wrong'
    assert not on_gpu.timing(False, message, 'cuda') and on_gpu.failures == [message]
    assert not on_cpu.timing(False, message, 'cpu') and on_cpu.failures == []
    assert on_cpu.figures['timing findings'] == [message]
    held = Checks()
    assert held.timing(True, message, 'cpu') and held.figures == {} and held.failures == []
