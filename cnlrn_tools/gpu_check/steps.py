"""The steps of ``cnlrn gpu-check``, in the order they start (:data:`STEPS`).

Pipeline steps run the console scripts users run (``basicsr``, ``torchrun``,
``cnlrn``) on option files derived from the project's own, with only sizes,
iterations and devices changed; the others run probes (:mod:`.probes`).
Each step function takes its :class:`~.runner.StepContext`, runs its
commands and records its figures and failed checks there; :data:`STEPS`
gives each its name, what it covers, its timeout and the steps it needs.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import stat

import cv2
import numpy as np
import torch
from basicsr.metrics import calculate_psnr

from cnlrn_base.option_file import deep_update
from cnlrn_base.project import DEMO_CHECKPOINT
from cnlrn_tools.gpu_check.modes import TINY_CNLRN, TINY_PREDEBLUR
from cnlrn_tools.gpu_check.options import DATASET_ROOTS, derive_option_file, training_changes
from cnlrn_tools.gpu_check.step_runner import Step, StepContext, StepFailed
from cnlrn_tools.hardware.flops import floor_ratio, size_label

PRETRAIN_NAME, JOINT_NAME = 'CNLRN_pretrain_deblur_REDS', 'CNLRN_joint_REDS'  # the option files' own names
# the killed run is killed once this training state exists
KILL_AFTER_STATE = 4
# planted in the fp16 training state: a fresh GradScaler starts at 65536 and grows only every 2000 iterations
PLANTED_SCALE = 1024.0
# 8-bit levels that GPU and CPU outputs of ``basicsr test`` may differ by (float32 rounding at quantization edges)
GPU_CPU_LEVELS = 2
# least PSNR (dB) of a ``cnlrn infer`` variant against the plain float32 output; a tile's non-local attention sees
# only the padded tile, so tiling is not exact by design (the demo checkpoint: 43.2 dB at tile 16, pad 8, on 32x32)
MIN_PSNR = {'bf16': 40, 'fp16': 40, 'tile': 40, 'channels_last': 45, 'compile': 45}
VAL_METRICS = re.compile(r'# (psnr|ssim): ([\d.]+)')


def _num_gpu(ctx: StepContext) -> int:
    return int(ctx.mode.device == 'cuda')


def _nccl_log(ctx: StepContext) -> dict[str, str]:
    """Environment that makes NCCL log its start-up, the evidence that a GPU run used it."""
    return {'NCCL_DEBUG': 'INFO'} if ctx.mode.device == 'cuda' else {}


def _free_port() -> int:
    """A TCP port nothing listens on now, for a rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _metrics(output: str) -> dict[str, float]:
    """The last validation PSNR and SSIM a BasicSR log printed."""
    return {name: float(value) for name, value in VAL_METRICS.findall(output)}


def _option_file(ctx: StepContext, option: str, changes: dict) -> str:
    """The project's ``option`` with ``changes``, written under the work folder as <name>.yml."""
    return derive_option_file(option, ctx.path('options', f'{changes["name"]}.yml'), changes)


def _tiny_joint(ctx: StepContext, name: str, total_iter: int, workers: int = 0, **changes) -> str:
    """options/joint.yml for a tiny CNLRN trained from scratch on the tiny data, no validation, ``changes`` merged."""
    opt = training_changes(ctx.check.shared['data'], name, total_iter, _num_gpu(ctx), validate=False, workers=workers)
    opt.update(network_g=TINY_CNLRN, path=dict(pretrain_network_deblur=None))
    return _option_file(ctx, 'joint.yml', deep_update(opt, changes))


def _train(ctx: StepContext, opt: str, *args: str, env: dict[str, str] | None = None) -> str:
    """``basicsr train -opt OPT ARGS`` to the end of training; its output."""
    output = ctx.run([ctx.script('basicsr'), 'train', '-opt', opt, *args], env)
    ctx.expect_in(output, 'End of training')
    return output


def _experiment(ctx: StepContext, name: str, *parts: str) -> str:
    return ctx.path('experiments', name, *parts)


def _newest_state(folder: str) -> int:
    """The iteration of the newest training state in ``folder`` (0 without one)."""
    return max(
        (int(os.path.basename(p)[: -len('.state')]) for p in glob.glob(os.path.join(folder, '*.state'))), default=0
    )


def _read_text(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


def _weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location='cpu', weights_only=True)['params']


def _psnr(path: str, reference: str) -> float:
    """PSNR (dB) of the 8-bit image ``path`` against ``reference``; inf when equal."""
    return float(calculate_psnr(cv2.imread(path), cv2.imread(reference), crop_border=0))


# -- the steps --------------------------------------------------------------------------------------


def environment(ctx: StepContext) -> None:
    ctx.probe('environment')


def data(ctx: StepContext) -> None:
    photo = ctx.path('infer', 'photo.png')
    ctx.probe('data', root=ctx.path('data'), infer_lr=ctx.mode.infer_lr, photo=photo)
    ctx.check.shared.update(data=ctx.figures.pop('paths'), photo=photo)


def fixture(ctx: StepContext) -> None:
    ctx.probe('fixture')


def fixture_tf32(ctx: StepContext) -> None:
    ctx.probe('fixture_tf32')


def sdpa_backends(ctx: StepContext) -> None:
    ctx.probe('sdpa_backends', config=ctx.mode.sdpa_config, input=ctx.mode.sdpa_input)


def pretrain(ctx: StepContext) -> None:
    changes = training_changes(ctx.check.shared['data'], PRETRAIN_NAME, 4, _num_gpu(ctx), validate=True)
    changes['network_g'] = TINY_PREDEBLUR
    if ctx.mode.device == 'cuda':
        changes['datasets']['train'].update(prefetch_mode='cuda', pin_memory=True, num_worker_per_gpu=2)
    output = _train(ctx, _option_file(ctx, 'pretrain.yml', changes))
    ctx.expect_in(output, '# psnr:')
    if ctx.mode.device == 'cuda':
        ctx.expect_in(output, 'Use cuda prefetch dataloader')
    ctx.figures['validation'] = _metrics(output)


def joint(ctx: StepContext) -> None:
    changes = training_changes(ctx.check.shared['data'], JOINT_NAME, 4, _num_gpu(ctx), validate=True)
    changes.update(network_g=TINY_CNLRN, speed=dict(channels_last=True))
    changes['train']['amp'] = 'bf16'  # validation follows
    output = _train(ctx, _option_file(ctx, 'joint.yml', changes))
    ctx.expect_in(output, f'DeblurNet tensors from experiments/{PRETRAIN_NAME}/models/net_g_latest.pth', '# psnr:')
    ctx.figures['validation (bf16)'] = _metrics(output)
    ctx.check.shared['joint'] = _experiment(ctx, JOINT_NAME, 'models', 'net_g_latest.pth')


def kill_resume(ctx: StepContext) -> None:
    name = 'gpu_check_resume'
    opt = _tiny_joint(ctx, name, 100_000)
    states = _experiment(ctx, name, 'training_states')
    proc = ctx.start([ctx.script('basicsr'), 'train', '-opt', opt])
    ctx.wait_until(lambda: _newest_state(states) >= KILL_AFTER_STATE, proc, f'training state {KILL_AFTER_STATE}')
    ctx.kill(proc)
    saved = _newest_state(states)
    output = _train(ctx, opt, '--auto_resume', '--force_yml', f'train:total_iter={saved + 2}')
    ctx.expect_in(output, 'Resuming training from epoch', f'iter: {saved}.')
    ctx.figures.update(killed_after_state=saved, resumed_to=saved + 2)


def fp16_scaler(ctx: StepContext) -> None:
    name = 'gpu_check_fp16'
    # a schedule longer than the run, which the resumed run extends
    opt = _tiny_joint(ctx, name, 2, train=dict(amp='fp16', scheduler=dict(periods=[100])))
    _train(ctx, opt)
    path = _experiment(ctx, name, 'training_states', '2.state')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if 'scaler' not in state:
        raise StepFailed(f'{path} holds no loss scaler')
    ctx.figures['loss scale saved'] = state['scaler']['scale']
    state['scaler']['scale'] = PLANTED_SCALE
    torch.save(state, path)
    _train(ctx, opt, '--auto_resume', '--force_yml', 'train:total_iter=4')
    resumed_state = torch.load(
        _experiment(ctx, name, 'training_states', '4.state'), map_location='cpu', weights_only=True
    )
    resumed = resumed_state['scaler']['scale']
    ctx.figures.update({'loss scale planted': PLANTED_SCALE, 'loss scale after resuming': resumed})
    ctx.expect(resumed <= PLANTED_SCALE, f'the resumed loss scale is {resumed}, not the saved {PLANTED_SCALE}')


def torchrun(ctx: StepContext) -> None:
    opt = _tiny_joint(ctx, 'gpu_check_torchrun', 2)
    launch = ['--nproc_per_node=1', f'--master_port={_free_port()}', '-m', 'cnlrn_arch.train', '-opt', opt]
    output = ctx.run([ctx.script('torchrun'), *launch, '--launcher', 'pytorch'], ctx.env(**_nccl_log(ctx)))
    ctx.expect_in(output, 'weights identical on all 1 ranks', 'End of training')
    if ctx.mode.device == 'cuda':
        ctx.expect('NCCL INFO' in output, 'NCCL logged nothing: the GPU tensors did not go through NCCL')
    ctx.figures['backend'] = 'nccl' if ctx.mode.device == 'cuda' else 'gloo'


def slurm(ctx: StepContext) -> None:
    stub_dir = ctx.path('slurm_stub')
    os.makedirs(stub_dir, exist_ok=True)
    stub = os.path.join(stub_dir, 'scontrol')
    with open(stub, 'w', encoding='utf-8') as f:
        f.write('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls.log"\necho 127.0.0.1\n')
    os.chmod(stub, os.stat(stub).st_mode | stat.S_IXUSR)
    opt = _tiny_joint(ctx, 'gpu_check_slurm', 2, dist_params=dict(port=_free_port()))
    env = ctx.env(
        PATH=stub_dir + os.pathsep + os.environ.get('PATH', ''),
        SLURM_PROCID='0',
        SLURM_NTASKS='1',
        SLURM_LOCALID='0',
        SLURM_NODELIST='gpucheck-node',
        **_nccl_log(ctx),
    )
    output = _train(ctx, opt, '--launcher', 'slurm', env=env)
    ctx.expect_in(output, 'weights identical on all 1 ranks')
    calls_log = os.path.join(stub_dir, 'calls.log')
    calls = _read_text(calls_log) if os.path.isfile(calls_log) else ''
    ctx.expect('show hostname gpucheck-node' in calls, f'scontrol was not asked for the master node: {calls!r}')


def deterministic(ctx: StepContext) -> None:
    names = ('gpu_check_deterministic_a', 'gpu_check_deterministic_b')
    # with a data loader worker: its seeding is part of what must repeat
    opts = [_tiny_joint(ctx, name, 3, workers=1, deterministic=True, manual_seed=7) for name in names]
    outputs = ctx.run_all([[ctx.script('basicsr'), 'train', '-opt', opt] for opt in opts])
    for output in outputs:
        ctx.expect_in(output, 'End of training')
    first, second = (_weights(_experiment(ctx, name, 'models', 'net_g_latest.pth')) for name in names)
    differing = [k for k in first if not torch.equal(first[k], second.get(k, torch.empty(0)))]
    ctx.figures.update(tensors_compared=len(first), tensors_differing=len(differing))
    ctx.expect(not differing and first.keys() == second.keys(), f'the runs differ in {differing[:3]}...')


def _test_options(ctx: StepContext, option: str, device: str) -> str:
    """``option`` (options/test_val300*.yml) for the joint checkpoint on the tiny validation frames on ``device``."""
    data = ctx.check.shared['data']
    changes = dict(
        name=f'gpu_check_{option[: -len(".yml")]}_{device}',
        num_gpu=int(device == 'cuda'),
        network_g=TINY_CNLRN,
        datasets=dict(test_1={f'dataroot_{k}': data[f'val_{DATASET_ROOTS[k]}'] for k in ('gt', 'lq')}),
        path=dict(pretrain_network_g=ctx.check.shared['joint'], param_key_g='params'),
        val=dict(pbar=False, suffix='gpu_check'),
    )
    return _option_file(ctx, option, changes)


TEST_OPTIONS = ('test_val300.yml', 'test_val300_x8.yml')


def _run_tests(ctx: StepContext, device: str) -> dict[str, list[str]]:
    """``basicsr test`` plain and x8 on ``device``, side by side; option -> its images."""
    opts = [_test_options(ctx, option, device) for option in TEST_OPTIONS]
    outputs = ctx.run_all([[ctx.script('basicsr'), 'test', '-opt', opt] for opt in opts])
    images = {}
    for option, output in zip(TEST_OPTIONS, outputs):
        ctx.expect_in(output, '# psnr:', '# ssim:')
        ctx.figures[f'{option} on {device}'] = _metrics(output)
        name = f'gpu_check_{option[: -len(".yml")]}_{device}'
        images[option] = sorted(glob.glob(ctx.path('results', name, 'visualization', '*', '*.png')))
        ctx.expect(len(images[option]) > 0, f'{option} on {device} wrote no images')
    return images


def test(ctx: StepContext) -> None:
    ctx.check.shared['test_images'] = _run_tests(ctx, ctx.mode.device)


def test_gpu_vs_cpu(ctx: StepContext) -> None:
    gpu = ctx.check.shared['test_images']
    for option, cpu_images in _run_tests(ctx, 'cpu').items():
        ctx.expect(len(cpu_images) == len(gpu[option]), f'{option}: other images on the CPU than on the GPU')
        levels = max(
            int(np.abs(cv2.imread(a).astype(int) - cv2.imread(b).astype(int)).max())
            for a, b in zip(gpu[option], cpu_images)
        )
        ctx.figures[f'{option}: max |GPU - CPU| (8-bit levels)'] = levels
        ctx.expect(levels <= GPU_CPU_LEVELS, f'{option}: GPU and CPU outputs differ by {levels} levels')


def _infer_argv(ctx: StepContext, variant: str, flags: list[str]) -> list[str]:
    return [
        ctx.script('cnlrn'),
        'infer',
        '-i',
        ctx.check.shared['photo'],
        '-o',
        ctx.path('infer', variant),
        '--weights',
        DEMO_CHECKPOINT,
        '--device',
        ctx.mode.device,
        *flags,
    ]


def _infer_output(ctx: StepContext, variant: str) -> str:
    return ctx.path('infer', variant, 'photo_cnlrn.png')


def _check_psnr(ctx: StepContext, variant: str) -> None:
    """Record the PSNR of ``variant``'s output against the plain one's; check its least where it has one."""
    value = _psnr(_infer_output(ctx, variant), _infer_output(ctx, 'plain'))
    ctx.figures[f'{variant}: PSNR vs plain fp32 (dB)'] = round(value, 2)
    if variant in MIN_PSNR:
        ctx.expect(
            value >= MIN_PSNR[variant], f'{variant}: {value:.2f} dB from the plain output (< {MIN_PSNR[variant]})'
        )


def infer(ctx: StepContext) -> None:
    tile, pad = ctx.mode.infer_tile
    variants = {
        'plain': [],
        'bf16': ['--bf16'],
        'fp16': ['--fp16'],
        'tile': ['--tile', str(tile), '--tile-pad', str(pad)],
        'self_ensemble': ['--self-ensemble'],
        'channels_last': ['--channels-last'],
    }
    if ctx.mode.device == 'cuda':
        variants['tf32'] = ['--tf32']
    ctx.run_all([_infer_argv(ctx, variant, flags) for variant, flags in variants.items()])
    for variant in variants:
        if variant != 'plain':
            _check_psnr(ctx, variant)


def infer_compile(ctx: StepContext) -> None:
    ctx.run(_infer_argv(ctx, 'compile', ['--compile', ctx.mode.compile_backend]))
    ctx.figures['backend'] = ctx.mode.compile_backend
    _check_psnr(ctx, 'compile')


def bench(ctx: StepContext) -> None:
    out = ctx.path('bench')
    argv = [ctx.script('cnlrn'), 'bench', '--device', ctx.mode.device, '--out', out, *ctx.mode.bench_args]
    ctx.run(argv)
    with open(os.path.join(out, f'results_{ctx.mode.device}.json'), encoding='utf-8') as f:
        run = json.load(f)
    ctx.figures['GEMM peaks (GFLOP/s)'] = {
        p: f'{round(row["gflops"])} ({row["library"]}, {row["shape"]})' for p, row in run['peak_set_by'].items()
    }
    ctx.figures['bf16 native'] = run['bf16_native']
    for case in run['cases']:
        name = f'{case["kind"]} {case["impl"]} {case["precision"]} {size_label(case["size"])}'
        if 'error' in case:
            ctx.figures[name] = f'not run: {case["error"]}'
            ctx.expect('score matrices need' in case['error'], f'{name}: {case["error"]}')
            continue
        ratio = floor_ratio(case, run)
        ctx.figures[name] = {'median (s)': round(case['median_s'], 4), 'x floor': round(ratio, 2)}
        ctx.timing(
            ratio >= 1,
            f'{name}: {ratio:.2f}x its FLOP floor: faster than the floor, so the floor is wrong',
            ctx.mode.device,
        )


def train_speed(ctx: StepContext) -> None:
    mode = ctx.mode
    ctx.probe(
        'train_speed',
        configs=mode.train_configs,
        batch=mode.train_batch,
        lr=mode.train_lr,
        precisions=mode.train_precisions,
        iters=mode.train_iters,
        matmul_size=mode.matmul_size,
    )


def loader(ctx: StepContext) -> None:
    speed = ctx.check.results.get('train_speed')
    ctx.probe(
        'loader',
        frames=ctx.mode.loader_frames,
        root=ctx.path('loader_data'),
        data=ctx.check.shared['data'],
        changes=ctx.mode.loader_changes,
        batches=ctx.mode.loader_batches,
        consumed_per_s=speed.figures.get('joint images/s, fastest precision') if speed else None,
    )


STEPS = [
    Step('environment', 'torch, CUDA, the GPU, cuDNN, NCCL, a C++ compiler', environment, 90),
    Step('data', 'tiny REDS-layout LMDBs and validation frames; a photo for cnlrn infer', data, 120),
    Step(
        'fixture',
        'the small fixture on the device: sdpa, naive, channels_last in IEEE fp32 (<= 1e-4); bf16, fp16',
        fixture,
        120,
    ),
    Step(
        'fixture_tf32', 'the small fixture with TF32 convolutions and matmuls: the change', fixture_tf32, 90, (), True
    ),
    Step(
        'sdpa_backends',
        'CNLRN (head dim 256) forward and backward under each SDPA backend in fp32/bf16/fp16; the default pick',
        sdpa_backends,
        180,
    ),
    # the longest timing early: a dry run, where it is no timing, overlaps it with the rest
    Step('bench', 'cnlrn bench: fp32, TF32 (CUDA), bf16; sdpa and naive; x FLOP floor', bench, 300, exclusive=True),
    Step(
        'pretrain',
        'basicsr train options/pretrain.yml (CUDA prefetcher, pinned memory)',
        pretrain,
        150,
        ('data',),
    ),
    Step('joint', 'basicsr train options/joint.yml from stage 1, bf16, channels_last', joint, 150, ('pretrain',)),
    Step('kill_resume', 'SIGKILL during training, then --auto_resume', kill_resume, 180, ('data',)),
    Step('fp16_scaler', 'fp16 training; the loss scaler saved and restored on resume', fp16_scaler, 180, ('data',)),
    Step('torchrun', 'torchrun --nproc_per_node=1 (NCCL on the GPU, gloo on the CPU)', torchrun, 150, ('data',)),
    Step('slurm', "--launcher slurm with a stub scontrol and SLURM's variables", slurm, 150, ('data',)),
    Step('deterministic', 'two deterministic: true runs, bit-identical weights', deterministic, 180, ('data',)),
    Step('test', 'basicsr test options/test_val300.yml and _x8.yml', test, 150, ('joint',)),
    Step(
        'test_gpu_vs_cpu',
        f'basicsr test on the CPU: within {GPU_CPU_LEVELS} levels of the GPU',
        test_gpu_vs_cpu,
        150,
        ('test',),
        True,
    ),
    Step(
        'infer',
        'cnlrn infer plain, --bf16, --fp16, --tile, --self-ensemble, --channels-last, --tf32 (CUDA): PSNR vs plain',
        infer,
        180,
        ('data',),
    ),
    Step(
        'train_speed',
        "training steps at the release's batch 32: s/iter, images/s, peak memory, x floor; the paper's schedule",
        train_speed,
        300,
        exclusive=True,
    ),
    Step(
        'loader',
        'the data loader alone at the shipped worker count vs what training consumes',
        loader,
        180,
        ('data',),
        exclusive=True,
    ),
    Step('infer_compile', 'cnlrn infer --compile: PSNR vs plain', infer_compile, 300, ('infer',)),
]
