"""cnlrn demo on a busy machine: the threads it picks and its time estimate (fake clock, fake iteration times)."""

import pytest

from cnlrn_arch import demo


@pytest.mark.parametrize(
    ('load', 'cores', 'threads'),
    [
        (0.0, 2, 2),  # idle
        (0.3, 2, 2),  # background noise: both cores are free
        (1.0, 2, 1),  # one other job
        (1.6, 2, 1),  # less than half a core free still gets a thread
        (5.0, 2, 1),  # oversubscribed: at least 1
        (2.4, 16, 14),
        (0.0, 1, 1),
    ],
)
def test_threads_are_the_free_cores(load, cores, threads):
    assert demo.free_threads(load, cores) == threads


def log_line(iteration, seconds):
    """basicsr's training log line at ``iteration``, its average iteration time ``seconds``."""
    return (
        f'2026-12-07 22:24:10,121 INFO: [CNLRN..][epoch:  0, iter:{iteration:8,d}, lr:(2.000e-04,1.000e-03,)] '
        f'[eta: 0:00:00, time (data): {seconds:.3f} (0.069)] l_pix: 3.6854e-01\n'
    )


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def estimate(iterations=(300, 1000), quick=False):
    clock, said = FakeClock(), []
    return demo.TimeEstimate(iterations, quick, clock=clock, say=said.append), clock, said


def test_estimate_from_the_first_timed_pretraining_iterations():
    estimated, clock, said = estimate()
    watch = estimated.watch(0)
    clock.now += 60  # making the data and starting the training took a minute
    watch('2026-12-07 22:24:09,617 INFO: Start training from epoch: 0, iter: 0\n')
    watch(log_line(2, 0.4))  # warm-up: too early
    assert said == []
    watch(log_line(20, 0.4))
    # 280 pretraining iterations, 1000 joint ones at 0.8 of their cost, the other work as 120: 1200 x 0.4 s
    assert estimated.seconds_left(0, 20, 0.4) == pytest.approx(480)
    assert said == ['estimated demo time: 9 min in all, 8 min from now (0.40 s per training iteration)']
    watch(log_line(40, 9.0))  # once per stage
    assert len(said) == 1


def test_joint_stage_estimates_again_from_its_own_iterations():
    estimated, clock, said = estimate()
    clock.now += 300
    estimated.watch(1)(log_line(1_000 - 800, 0.24))
    # 800 joint iterations of 0.24 s, the other work as 120 pretraining iterations of 0.24 / 0.8 s
    assert estimated.seconds_left(1, 200, 0.24) == pytest.approx(800 * 0.24 + 120 * 0.3)
    assert said == ['estimated demo time: 9 min in all, 4 min from now (0.24 s per training iteration)']


def test_past_15_minutes_it_says_how_to_run_the_quick_demo(monkeypatch):
    monkeypatch.setattr(demo.shutil, 'which', demo.command_path)  # as in an activated environment
    estimated, _, said = estimate()
    estimated.watch(0)(log_line(20, 7.0))  # one step of 7 s: 2.5 hours
    assert len(said) == 2 and 'min in all' in said[0]
    assert "run 'cnlrn demo --quick'" in said[1] and 'past 15 minutes' in said[1]


def test_commands_off_path_are_named_by_their_path(monkeypatch):
    monkeypatch.setattr(demo.shutil, 'which', lambda name: None)  # make demo: .venv is not activated
    assert demo.command_name('cnlrn') == demo.command_path('cnlrn')
    monkeypatch.setattr(demo.shutil, 'which', lambda name: f'/elsewhere/bin/{name}')
    assert demo.command_name('cnlrn') == demo.command_path('cnlrn')
    monkeypatch.setattr(demo.shutil, 'which', demo.command_path)
    assert demo.command_name('cnlrn') == 'cnlrn'


def test_under_15_minutes_no_hint():
    estimated, clock, said = estimate()
    clock.now += 60
    estimated.watch(0)(log_line(20, 0.5))  # (280 + 800 + 120) x 0.5 s = 10 min after the first minute
    assert len(said) == 1 and said[0].startswith('estimated demo time: 11 min in all, 10 min from now')


def test_quick_demo_estimates_after_its_third_iteration_and_never_suggests_itself():
    estimated, _, said = estimate((4, 4), quick=True)
    watch = estimated.watch(0)
    for iteration in (1, 2):
        watch(log_line(iteration, 30.0))
    assert said == []
    watch(log_line(3, 30.0))  # (1 + 4 x 0.8 + 70) x 30 s: past 15 minutes, yet already the quick one
    assert len(said) == 1 and said[0].startswith('estimated demo time: 37 min in all')


def test_a_stage_shorter_than_the_warm_up_is_estimated_at_its_last_iteration():
    estimated, _, said = estimate((2, 2), quick=True)
    estimated.watch(1)(log_line(2, 1.0))
    assert len(said) == 1


def test_short_times_are_in_seconds():
    assert demo.duration(89) == '89 s'
    assert demo.duration(90) == '2 min'
    assert demo.duration(25 * 60 + 10) == '25 min'


def test_omp_num_threads_decides_where_set(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert demo.training_threads() == ('3', 'torch threads: 3 (OMP_NUM_THREADS is set)')
    monkeypatch.delenv('OMP_NUM_THREADS')
    monkeypatch.setattr(demo.os, 'getloadavg', lambda: (1.2, 0.5, 0.5))
    monkeypatch.setattr(demo, 'usable_cores', lambda: 2)
    assert demo.training_threads() == ('1', 'torch threads: 1 (2 cores, load average 1.20; OMP_NUM_THREADS sets them)')
