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
"""

import os
import shlex
import subprocess
import sys
import time
from os import path as osp

import cv2
import numpy as np

from cnlrn_arch.data_prep.demo_clip import demo_frames, make_demo_clip
from cnlrn_arch.inference.restore_video import frame_png
from cnlrn_arch.inference.video_io import frame_rgb, open_video
from cnlrn_arch.reports import pictures as reporting
from cnlrn_arch.reports.scores import read_results, read_val, score
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_base.inference_defaults import DEFAULT_SUFFIX, DEMO_QUICK_ITERS
from cnlrn_base.project import DEMO_DATA, DEMO_JOINT, DEMO_PRETRAIN, DEMO_VAL, SCALE, option_path

# experiment and result names of options/demo/*.yml
PRETRAIN, JOINT = 'CNLRN_demo_pretrain', 'CNLRN_demo_joint'
TEST_RUN, TEST_CHECKPOINT = 'CNLRN_demo_test', 'CNLRN_demo_checkpoint_test'
# the clip: LR (width, height) and frame count, the frame shown; --quick's is smaller
CLIP, QUICK_CLIP = ((128, 96), 4, 3), ((32, 24), 2, 1)


def run(args):
    """Run a command of this environment, its output streaming to the console."""
    print(f'\n$ {shlex.join(args)}', flush=True)
    args = [osp.join(osp.dirname(sys.executable), args[0])] + args[1:]
    result = subprocess.run(args)
    if result.returncode:
        raise UserError(f'{shlex.join(args)} failed with exit code {result.returncode}')


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
    data_args = ['--crops-per-photo', '2'] if quick else []
    run(['cnlrn', 'make-demo-data', '--out', DEMO_DATA] + data_args)
    train_extra = quick_overrides(DEMO_QUICK_ITERS) if quick else []
    run(['basicsr', 'train', '-opt', option(DEMO_PRETRAIN)] + train_extra)
    run(['basicsr', 'train', '-opt', option(DEMO_JOINT)] + train_extra)
    run(['basicsr', 'test', '-opt', option('demo/test.yml')])
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
            ]
        )
        video_picture(out, checkpoint, *(QUICK_CLIP if quick else CLIP))
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


def video_picture(out, checkpoint, size, frames, shown):
    """Restore a clip panning over ``astronaut`` (never trained on) with ``checkpoint`` through ``cnlrn infer``;
    write frame ``shown`` of it between its input frame upscaled by bicubic and the sharp frame."""
    clip = osp.join(out, 'blurry_clip.mp4')
    os.makedirs(out, exist_ok=True)
    make_demo_clip(clip, frames=frames, fps=8, size=size, audio_codec=None)  # frames only: contents() are frames
    run(['cnlrn', 'infer', '-i', clip, '-o', out, '--weights', checkpoint, '--frames-out', out])
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
