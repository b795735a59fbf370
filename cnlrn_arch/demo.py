"""The main job end to end on the embedded demo data, on CPU (``cnlrn demo``).

1. ``cnlrn make-demo-data`` (blurry LR / sharp HR pairs from scikit-image's photos);
2. ``basicsr train -opt options/demo/pretrain.yml`` (deblurring module);
3. ``basicsr train -opt options/demo/joint.yml`` (the whole cascade);
4. ``basicsr test`` of that model and of the shipped demo checkpoint;
5. a PSNR/SSIM table against bicubic upsampling, a side-by-side picture and a
   PSNR curve under ``results/demo/``;
6. ``cnlrn infer`` of a short blurry clip (a pan over a held-out photo) with
   the checkpoint, and a frame of it beside its input and the sharp frame.
Data, experiments and results are written in the current directory; the option
files come from this repository.

Training runs with as many torch threads as the machine has cores free (its
load average against the cores this process may use; OMP_NUM_THREADS, where
set, decides instead): threads beyond the free cores slow every step several
times over. After the first timed iterations of each training stage the demo
prints an estimate of its whole time, and how to run the quick one instead
where that is past 15 minutes.
"""

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from os import path as osp

import cv2
import numpy as np

from cnlrn_arch.data_prep.demo_clip import demo_frames, make_demo_clip
from cnlrn_arch.inference.restore_video import frame_png
from cnlrn_arch.inference.video_io import frame_rgb
from cnlrn_arch.reports import pictures as reporting
from cnlrn_arch.reports.scores import read_results, read_val, score
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.inference_defaults import DEFAULT_SUFFIX, DEMO_QUICK_ITERS
from cnlrn_base.option_file import load_option_file
from cnlrn_base.project import DEMO_DATA, DEMO_JOINT, DEMO_PRETRAIN, DEMO_VAL, SCALE, option_path
from cnlrn_base.video_input import open_video

# experiment and result names of options/demo/*.yml
PRETRAIN, JOINT = 'CNLRN_demo_pretrain', 'CNLRN_demo_joint'
TEST_RUN, TEST_CHECKPOINT = 'CNLRN_demo_test', 'CNLRN_demo_checkpoint_test'
# the clip: LR (width, height) and frame count, the frame shown; --quick's is smaller
CLIP, QUICK_CLIP = ((128, 96), 4, 3), ((32, 24), 2, 1)

# The demo's time in pretraining iterations of this run (0.43 s each with one thread on a 2-core EPYC): a joint
# iteration costs about 0.8 of one (0.34 s against 0.47 s forward and backward at the demo's crops); the work
# besides iterations once training has begun (starting processes, validations, the two tests, the clip, the report)
# about 120 in the full demo, 70 in the quick one (29 s of it measured after the quick demo's pretraining).
JOINT_ITERATION_COST = 0.8
OTHER_WORK_ITERATIONS = {False: 120, True: 70}
# basicsr's first iterations include one-off warm-up: no estimate before this many
ESTIMATE_AFTER_ITERATIONS = 3
# the README's promise for the full demo; past it the estimate says how to run the quick one
PROMISED_SECONDS = 15 * 60
# basicsr's training log line: "[CNLRN..][epoch:  0, iter:      20, lr:(...)] [eta: ..., time (data): 0.412 (0.021)]"
ITERATION_LOG = re.compile(r'iter:\s*([\d,]+), lr:.*time \(data\): ([\d.]+)')


def free_threads(load, cores):
    """Torch threads for a machine with ``cores`` cores and load average ``load``: its free cores, at least 1.

    Half a core free counts as one; a thread more than the free cores would share a busy core, where each
    training step waits for its slowest thread (a step took 7 s with one thread, 17-77 s with two on a
    2-core machine running another job).
    """
    return max(1, min(cores, math.floor(cores - load + 0.5)))


def usable_cores():
    """The cores this process may run on (its affinity where the system tells it), at least 1."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def training_threads():
    """(OMP_NUM_THREADS for the demo's processes, one line saying why)."""
    if os.environ.get('OMP_NUM_THREADS'):
        threads = os.environ['OMP_NUM_THREADS']
        return threads, f'torch threads: {threads} (OMP_NUM_THREADS is set)'
    load, cores = os.getloadavg()[0], usable_cores()
    threads = free_threads(load, cores)
    return str(threads), f'torch threads: {threads} ({cores} cores, load average {load:.2f}; OMP_NUM_THREADS sets them)'


def print_now(line):
    """Print ``line`` at once: the training's log streams around it."""
    print(line, flush=True)


def duration(seconds):
    """Seconds as text a person reads at a glance: whole minutes from 90 s on."""
    return f'{seconds / 60:.0f} min' if seconds >= 90 else f'{seconds:.0f} s'


class TimeEstimate:
    """Estimates the whole demo's time from basicsr's iteration times, once per training stage.

    Args:
        iterations (tuple[int, int]): total iterations of the pretraining and the joint stage.
        quick (bool): the quick demo runs; it is not told to run itself instead.
        clock: seconds, monotonic; the demo's start is its value at construction.
        say: where the estimate goes (a line of text).
    """

    def __init__(self, iterations, quick, clock=time.monotonic, say=print_now):
        self.iterations, self.quick, self.clock, self.say = iterations, quick, clock, say
        self.start = clock()
        self.estimated_stages = set()

    def seconds_left(self, stage, iteration, seconds_per_iteration):
        """The demo's remaining seconds at ``iteration`` of training ``stage`` (0 pretraining, 1 joint)."""
        pretrain, joint = self.iterations
        pretrain_left, joint_left = (pretrain - iteration, joint) if stage == 0 else (0, joint - iteration)
        pretrain_seconds = seconds_per_iteration if stage == 0 else seconds_per_iteration / JOINT_ITERATION_COST
        left = pretrain_left + joint_left * JOINT_ITERATION_COST + OTHER_WORK_ITERATIONS[self.quick]
        return left * pretrain_seconds

    def watch(self, stage):
        """A callback for the lines of training ``stage``'s log: the first timed one after the warm-up estimates."""

        def read(line):
            match = ITERATION_LOG.search(line)
            if not match or stage in self.estimated_stages:
                return
            iteration, seconds_per_iteration = int(match[1].replace(',', '')), float(match[2])
            if iteration >= min(ESTIMATE_AFTER_ITERATIONS, self.iterations[stage]):
                self.estimated_stages.add(stage)
                self.report(self.seconds_left(stage, iteration, seconds_per_iteration), seconds_per_iteration)

        return read

    def report(self, left, seconds_per_iteration):
        total = self.clock() - self.start + left
        self.say(
            f'estimated demo time: {duration(total)} in all, {duration(left)} from now '
            f'({seconds_per_iteration:.2f} s per training iteration)'
        )
        if total > PROMISED_SECONDS and not self.quick:
            self.say(
                f'that is past {PROMISED_SECONDS // 60} minutes: this machine is slow or busy. '
                f"Stop it (Ctrl+C) and run '{command_name('cnlrn')} demo --quick' ({DEMO_QUICK_ITERS} iterations "
                'per stage: it checks the pipeline only), or let it run'
            )


def command_path(name):
    """The path of command ``name`` of this environment (the one running the demo)."""
    return osp.join(osp.dirname(sys.executable), name)


def command_name(name):
    """How a person types command ``name`` of this environment: its name where PATH finds it, else its path
    (``make demo`` runs without activating ``.venv``)."""
    path = command_path(name)
    return name if shutil.which(name) == path else path


def run(args, threads, watch=None):
    """Run a command of this environment, its output streaming to the console.

    threads: OMP_NUM_THREADS for it; watch: called with each line of its standard error (which still streams).
    """
    print(f'\n$ {shlex.join(args)}', flush=True)
    args = [command_path(args[0])] + args[1:]
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    if watch is None:
        returncode = subprocess.run(args, env=env).returncode
    else:
        with subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True, errors='replace') as process:
            for line in process.stderr:
                sys.stderr.write(line)
                watch(line)
        returncode = process.returncode
    if returncode:
        raise UserError(f'{shlex.join(args)} failed with exit code {returncode}')


def option(name):
    path = option_path(name)
    if not osp.isfile(path):
        raise UserError(f'{path} not found: the installation lacks its option files; reinstall cnlrn_arch')
    return path


def quick_overrides(total_iter):
    return [
        '--force_yml',
        f'train:total_iter={total_iter}',
        f'train:scheduler:periods=[{total_iter}]',
        f'val:val_freq={total_iter}',
        f'logger:save_checkpoint_freq={total_iter}',
        'logger:print_freq=1',
    ]


def run_demo(out, checkpoint, quick=False):
    """Make the data, train both stages, test this run and ``checkpoint``, and write the report to ``out``.

    quick: a few iterations per stage on a smaller data set, to check the pipeline only.
    """
    start = time.time()
    threads, why = training_threads()
    print(why, flush=True)
    stages = [option(DEMO_PRETRAIN), option(DEMO_JOINT)]
    iterations = [DEMO_QUICK_ITERS if quick else load_option_file(path)['train']['total_iter'] for path in stages]
    estimate = TimeEstimate(tuple(iterations), quick)
    data_args = ['--crops-per-photo', '2'] if quick else []
    run(['cnlrn', 'make-demo-data', '--out', DEMO_DATA] + data_args, threads)
    train_extra = quick_overrides(DEMO_QUICK_ITERS) if quick else []
    for stage, path in enumerate(stages):
        run(['basicsr', 'train', '-opt', path] + train_extra, threads, estimate.watch(stage))
    run(['basicsr', 'test', '-opt', option('demo/test.yml')], threads)
    has_checkpoint = osp.isfile(checkpoint)
    if has_checkpoint:
        run(
            [
                'basicsr',
                'test',
                '-opt',
                option('demo/test_checkpoint.yml'),
                '--force_yml',
                f'path:pretrain_network_g={checkpoint}',
            ],
            threads,
        )
        video_picture(out, checkpoint, threads, *(QUICK_CLIP if quick else CLIP))
    else:
        print(f'no demo checkpoint at {checkpoint}: its row and the clip are left out')
    report(out, has_checkpoint)
    print(f'\nwall time: {time.time() - start:.0f} s')


def score_table(rows):
    """rows: (method, psnr, ssim), the baseline first -> a Markdown table as text."""
    base_method, base_psnr = rows[0][:2]
    cells = [
        [method, f'{psnr:.2f}', f'{ssim:.4f}', '' if method == base_method else f'{psnr - base_psnr:+.2f} dB']
        for method, psnr, ssim in rows
    ]
    return '\n'.join(reporting.markdown_table(['method', 'PSNR (dB)', 'SSIM', 'vs bicubic'], cells))


def report(out, has_checkpoint):
    names, sharp, _, bicubic = read_val(DEMO_VAL)
    trained = read_results(osp.join('results', TEST_RUN, 'visualization', 'demo_val'), names)
    rows = [
        ('bicubic upsampling of the blurry LR', *score(bicubic, sharp)),
        ('CNLRN, trained just now (options/demo)', *score(trained, sharp)),
    ]
    panels = [('bicubic', bicubic), ('CNLRN (this run)', trained)]
    if has_checkpoint:
        shipped = read_results(osp.join('results', TEST_CHECKPOINT, 'visualization', 'demo_val'), names)
        rows.append(('CNLRN, shipped demo checkpoint', *score(shipped, sharp)))
        panels.append(('CNLRN (checkpoint)', shipped))
    table = score_table(rows)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'table.md'), 'w', encoding='utf-8') as f:
        f.write(f'Held-out photos ({len(names)}: {", ".join(names)}), RGB, 4-pixel border cropped.\n\n{table}\n')
    picture = osp.join(out, 'comparison.png')
    # one tile of each held-out photo (clip) keeps the picture readable
    first_of_clip = {}
    for i, name in enumerate(names):
        first_of_clip.setdefault(name.split('_')[0], i)
    shown = list(first_of_clip.values())
    reporting.comparison_picture(
        picture, [(label, [imgs[i] for i in shown]) for label, imgs in panels], [sharp[i] for i in shown]
    )
    curve = osp.join(out, 'psnr_curve.png')
    joint_curve = reporting.read_scalar_curve(osp.join('tb_logger', JOINT), 'metrics/demo_val/psnr')
    reporting.psnr_curve_picture(curve, {'joint training': joint_curve}, rows[0][1])
    print(f'\nPSNR / SSIM on the {len(names)} held-out photos (RGB, 4-pixel border cropped):\n\n{table}\n')
    print(f'side-by-side picture:   {picture}')
    print(f'validation PSNR curve:  {curve}')
    print(f'TensorBoard logs:       tb_logger/{PRETRAIN}, tb_logger/{JOINT}  (tensorboard --logdir tb_logger)')


def video_picture(out, checkpoint, threads, size, frames, shown):
    """Restore a clip panning over ``astronaut`` (never trained on) with ``checkpoint`` through ``cnlrn infer``;
    write frame ``shown`` of it between its input frame upscaled by bicubic and the sharp frame."""
    clip = osp.join(out, 'blurry_clip.mp4')
    os.makedirs(out, exist_ok=True)
    make_demo_clip(clip, frames=frames, fps=8, size=size, audio_codec=None)  # frames only: contents() are frames
    run(['cnlrn', 'infer', '-i', clip, '-o', out, '--weights', checkpoint, '--frames-out', out], threads)
    restored_name = osp.join(out, 'blurry_clip' + DEFAULT_SUFFIX)  # cnlrn infer's name for the clip and its frames
    with open_video(clip) as video:
        decoded = [frame_rgb(frame) for frame in video.contents()]
    sharp = list(demo_frames(frames, size))[shown][0]
    bicubic = bicubic_resize_uint8(decoded[shown], SCALE)
    restored = cv2.imread(frame_png(restored_name, shown))
    picture = osp.join(out, 'video_frame.png')
    bgr = [np.ascontiguousarray(img[..., ::-1]) for img in (bicubic, sharp)]
    reporting.comparison_picture(
        picture, [('input frame, bicubic x4', [bgr[0]]), ('restored (demo checkpoint)', [restored])], [bgr[1]], 64
    )
    print(f'restored clip:          {restored_name}.mp4, a frame of it: {picture}')
