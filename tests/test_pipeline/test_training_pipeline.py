"""The real ``basicsr`` runner on tiny REDS-shaped data, CPU only.

Pre-training, joint training from that checkpoint, ``basicsr test``,
``--auto_resume`` after a killed run and a second run of a running experiment,
all driven by the project's own option files with only paths, sizes and
iteration counts changed.
"""

import glob
import os
import random
import signal
import subprocess
import time

import pytest
import torch

from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.training import experiment_lock
from tests.helpers import (
    ENV,
    TINY_CNLRN,
    TINY_PREDEBLUR,
    TINY_PREDEBLUR_ARGS,
    assert_one_line_error,
    command,
    derive_options,
    make_tiny_reds,
    run_command,
)

pytestmark = pytest.mark.slow

FAST = dict(num_gpu=0, logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False))


def train_changes(data, total_iter, lr_patch=8):
    loader = dict(
        num_worker_per_gpu=0,
        batch_size_per_gpu=2,
        gt_size=4 * lr_patch,
        dataroot_gt=data['train_sharp'],
        dataroot_lq=data['train_blur_bicubic_X4'],
    )
    val = dict(dataroot_gt=data['val_sharp'], dataroot_lq=data['val_blur_bicubic_X4'])
    scheduler = dict(periods=[total_iter], restart_weights=[1])
    return dict(
        FAST,
        datasets=dict(train=loader, val=val),
        val=dict(val_freq=total_iter),
        train=dict(total_iter=total_iter, scheduler=scheduler),
    )


def joint_options(root, data, name, total_iter, batch_size=2, workers=0, **changes):
    """options/joint.yml for a tiny CNLRN trained from scratch on the tiny data, no validation."""
    opt = train_changes(data, total_iter=total_iter)
    opt.update(name=name, network_g=TINY_CNLRN, val=None, path=dict(pretrain_network_deblur=None))
    opt.update(changes)
    opt['datasets']['val'] = None
    opt['datasets']['train'].update(batch_size_per_gpu=batch_size, num_worker_per_gpu=workers)
    return derive_options('options/joint.yml', root / f'{name}.yml', opt)


def torchrun_train(opt, port):
    """torchrun's arguments for two CPU ranks of ``python -m cnlrn_arch.train``."""
    return [
        '--nproc_per_node=2',
        f'--master_port={port}',
        '-m',
        'cnlrn_arch.train',
        '-opt',
        opt,
        '--launcher',
        'pytorch',
    ]


def run(name, *args, cwd):
    """Run an installed script to success; its output."""
    result = run_command(name, *args, cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def start(name, *args, cwd):
    """Start an installed script in the background, its output discarded (it is to be killed)."""
    return subprocess.Popen(
        [command(name), *map(str, args)], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp('pipeline')
    return root, make_tiny_reds(str(root / 'data'))


def test_pretrain_then_joint_then_test(workdir):
    root, data = workdir
    pretrain = train_changes(data, total_iter=4)
    pretrain['datasets']['train']['dataroot_gt_lr'] = data['train_sharp_bicubic_X4']
    pretrain['datasets']['val']['dataroot_gt_lr'] = data['val_sharp_bicubic_X4']
    pretrain['network_g'] = TINY_PREDEBLUR
    out = run('basicsr', 'train', '-opt', derive_options('options/pretrain.yml', root / 'pre.yml', pretrain), cwd=root)
    assert 'Validation Val300' in out and '# psnr:' in out
    # basicsr's validation after its loop (at its count, 5 or 6) would repeat the one at 4 on the same weights
    assert out.count('Validation at iter 4 took') == 1 and 'Validation of Val300 at iter 4 done already' in out
    assert 'Validation at iter 5' not in out and 'Validation at iter 6' not in out
    pre_ckpt = root / 'experiments/CNLRN_pretrain_deblur_REDS/models/net_g_latest.pth'
    assert pre_ckpt.is_file()

    joint = train_changes(data, total_iter=4)
    joint['network_g'] = TINY_CNLRN
    out = run('basicsr', 'train', '-opt', derive_options('options/joint.yml', root / 'joint.yml', joint), cwd=root)
    assert 'Loaded 62 DeblurNet tensors from experiments/CNLRN_pretrain_deblur_REDS/models/net_g_latest.pth' in out
    assert 'Dropped 2 tensors not in DeblurNet: DeblurNet.outBlock.3.body.0.bias' in out
    assert 'l_grad:' in out and 'End of training' in out
    joint_ckpt = root / 'experiments/CNLRN_joint_REDS/models/net_g_latest.pth'
    pre_state = torch.load(pre_ckpt, weights_only=True)['params']
    joint_state = torch.load(joint_ckpt, weights_only=True)['params']
    # trained jointly at lr_deblur, the deblurring weights moved, but only a little
    key = 'DeblurNet.inBlock.0.body.0.weight'
    assert not torch.equal(pre_state[key], joint_state[key])
    assert (pre_state[key] - joint_state[key]).abs().max() < 0.01

    test = dict(
        num_gpu=0,
        network_g=TINY_CNLRN,
        datasets=dict(test_1=dict(dataroot_gt=data['val_sharp'], dataroot_lq=data['val_blur_bicubic_X4'])),
        path=dict(pretrain_network_g=str(joint_ckpt), param_key_g='params'),
        val=dict(pbar=False),
    )
    out = run('basicsr', 'test', '-opt', derive_options('options/test_val300.yml', root / 't.yml', test), cwd=root)
    assert 'Validation Val300' in out and '# psnr:' in out and '# ssim:' in out
    assert len(glob.glob(str(root / 'results/CNLRN_Val300/visualization/Val300/*.png'))) == 2

    out = run('basicsr', 'test', '-opt', derive_options('options/test_val300_x8.yml', root / 't8.yml', test), cwd=root)
    assert 'Validation Val300' in out and '# psnr:' in out


def test_auto_resume_after_kill(workdir):
    root, data = workdir
    deblur = root / 'resume_predeblur.pth'
    torch.save({'params': CNLRNPreDeblur(**TINY_PREDEBLUR_ARGS).state_dict()}, deblur)
    opt = joint_options(root, data, 'resume_after_kill', 10_000, path=dict(pretrain_network_deblur=str(deblur)))
    states = root / 'experiments/resume_after_kill/training_states'
    proc = start('basicsr', 'train', '-opt', opt, cwd=root)
    deadline = time.time() + 300
    while not (states / '6.state').exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = max(int(p.stem) for p in states.glob('*.state'))
    assert saved >= 6
    # newer but incomplete: a truncated state, and a state whose network checkpoint is missing
    models = root / 'experiments/resume_after_kill/models'
    (states / f'{saved + 2}.state').write_bytes((states / f'{saved}.state').read_bytes()[:1000])
    (models / f'net_g_{saved + 2}.pth').write_bytes((models / f'net_g_{saved}.pth').read_bytes())
    (states / f'{saved + 4}.state').write_bytes((states / f'{saved}.state').read_bytes())
    out = run(
        'basicsr', 'train', '-opt', opt, '--auto_resume', '--force_yml', f'train:total_iter={saved + 8}', cwd=root
    )
    assert f'skipping {states / f"{saved + 4}.state"}: its network checkpoint' in out
    assert f'skipping {states / f"{saved + 2}.state"}: unreadable' in out
    assert 'Resuming training from epoch: ' in out and f'iter: {saved}.' in out
    # the resumed checkpoint's DeblurNet is kept, not replaced by the pre-training weights
    assert 'Resuming: path:pretrain_network_deblur' in out and 'DeblurNet tensors from' not in out
    assert f'iter:{saved + 1:8,d}' in out and 'End of training' in out
    assert (states / f'{saved + 8}.state').is_file()
    assert (root / 'experiments/resume_after_kill/models/net_g_latest.pth').is_file()


def test_distributed_joint_training_on_cpu(workdir):
    root, data = workdir
    opt = joint_options(root, data, 'ddp_cpu', 4, batch_size=1)
    out = run('torchrun', *torchrun_train(opt, 29731), cwd=root)
    assert 'World size (gpu number): 2' in out
    for it in (2, 4):
        assert f'iter {it}: weights identical on all 2 ranks' in out
    assert 'End of training' in out


def test_deterministic_runs_repeat_exactly(workdir):
    root, data = workdir
    weights = []
    for name, seed in (('deterministic_a', 7), ('deterministic_b', 7), ('deterministic_c', 8)):
        # with a data loader worker: worker seeding is part of the check
        opt = joint_options(root, data, name, 3, workers=1, deterministic=True, manual_seed=seed)
        out = run('basicsr', 'train', '-opt', opt, cwd=root)
        assert 'End of training' in out
        weights.append(torch.load(root / f'experiments/{name}/models/net_g_latest.pth', weights_only=True)['params'])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the comparison can tell runs apart: another seed gives other weights
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def newest_state(states):
    return max((int(p.stem) for p in states.glob('*.state')), default=0)


def test_sigkill_and_auto_resume_is_bit_exact(workdir):
    """Kill a real run at 5 moments, resume each time; the result equals an uninterrupted run bit for bit."""
    root, data = workdir
    total = 24  # 3 iterations an epoch: resumes land inside epochs and at their ends
    final = {}
    for name in ('exact_reference', 'exact_killed'):
        opt = joint_options(root, data, name, total, workers=1, manual_seed=3)
        states = root / f'experiments/{name}/training_states'
        if name == 'exact_killed':
            rng = random.Random(0)
            for attempt in range(5):
                proc = start('basicsr', 'train', '-opt', opt, *(['--auto_resume'] if attempt else []), cwd=root)
                seen = newest_state(states)
                deadline = time.time() + 300
                while newest_state(states) <= seen and proc.poll() is None and time.time() < deadline:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0, 0.3))  # anywhere: mid-iteration, mid-save, between saves
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                assert newest_state(states) < total, 'the run finished before it could be killed'
            out = run('basicsr', 'train', '-opt', opt, '--auto_resume', cwd=root)
            assert 'Resuming training from epoch' in out
        else:
            run('basicsr', 'train', '-opt', opt, cwd=root)
        final[name] = torch.load(root / f'experiments/{name}/models/net_g_latest.pth', weights_only=True)['params']
    reference, resumed = final['exact_reference'], final['exact_killed']
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def wait_for_state(states, proc, iteration):
    """Wait until the run ``proc`` saved the training state of ``iteration`` or a later one."""
    deadline = time.time() + 300
    while newest_state(states) < iteration and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, 'the run ended'


def test_a_second_run_of_a_running_experiment_is_refused_and_a_killed_runs_lock_is_not_stale(
    workdir, run_basicsr, monkeypatch, capsys
):
    root, data = workdir
    monkeypatch.chdir(root)
    opt = joint_options(root, data, 'one_run', 10_000)
    experiment = root / 'experiments/one_run'
    states = experiment / 'training_states'
    first = start('basicsr', 'train', '-opt', opt, cwd=root)
    try:
        wait_for_state(states, first, 2)
        saved_before = {p: p.read_bytes() for p in (experiment / 'models').glob('*.pth')}
        for resume in ([], ['--auto_resume']):  # in this process, short: should they run, they end soon
            assert run_basicsr('train', '-opt', opt, *resume, '--force_yml', 'train:total_iter=4') == 2
            assert_one_line_error(
                capsys.readouterr().err,
                f"error: experiment 'one_run' is being trained by process {first.pid} on ",
                'wait for that run to end or stop it, or set another name in the option file',
            )
        # the first run goes on saving into its folder
        wait_for_state(states, first, newest_state(states) + 4)
    finally:
        first.send_signal(signal.SIGKILL)  # its lock cannot be released by itself
        first.wait()
    assert not list(root.glob('experiments/one_run_archived_*'))
    assert all(path.read_bytes() == content for path, content in saved_before.items())
    saved = sorted(int(p.stem) for p in states.glob('*.state'))
    assert saved == list(range(2, saved[-1] + 1, 2))  # every state of the first run, each complete
    for iteration in saved:
        assert torch.load(states / f'{iteration}.state', weights_only=True)['iter'] == iteration
        torch.load(experiment / f'models/net_g_{iteration}.pth', weights_only=True)

    total = f'train:total_iter={saved[-1] + 2}'
    assert run_basicsr('train', '-opt', opt, '--auto_resume', '--force_yml', total) == 0
    assert newest_state(states) == saved[-1] + 2 and not list(root.glob('experiments/one_run_archived_*'))


def test_a_distributed_run_of_a_locked_experiment_stops_on_every_rank(workdir):
    root, data = workdir
    opt = joint_options(root, data, 'ddp_locked', 4, batch_size=1)
    experiment_lock.acquire(str(root / 'experiments/ddp_locked'))
    try:
        result = run_command('torchrun', *torchrun_train(opt, 29735), cwd=root, timeout=300)
    finally:
        experiment_lock.release()
    assert result.returncode != 0
    refusal = f"error: experiment 'ddp_locked' is being trained by process {os.getpid()} on "
    assert (result.stdout + result.stderr).count(refusal) == 2  # rank 0 and rank 1, no hang
    assert not (root / 'experiments/ddp_locked').exists()


def child_pids(pid):
    """PIDs of the direct children of ``pid`` (from /proc, no extra dependency)."""
    children = []
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.split('/')[2]))
    return children


def test_killed_rank_stops_the_job_and_auto_resume_continues(workdir):
    root, data = workdir
    opt = joint_options(root, data, 'ddp_fault', 10_000, batch_size=1)
    torchrun = torchrun_train(opt, 29733)
    states = root / 'experiments/ddp_fault/training_states'
    job = start('torchrun', *torchrun, cwd=root)
    deadline = time.time() + 300
    while newest_state(states) < 4 and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    ranks = child_pids(job.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGKILL)
    killed = time.time()
    returncode = job.wait(timeout=120)  # a hang would fail here
    print(f'job exited {time.time() - killed:.1f} s after one rank was killed, code {returncode}')
    assert returncode != 0
    saved = newest_state(states)
    out = run('torchrun', *torchrun, '--auto_resume', '--force_yml', f'train:total_iter={saved + 4}', cwd=root)
    assert f'iter: {saved}.' in out and 'End of training' in out
