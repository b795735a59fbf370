"""What several test modules share: tiny networks and options, the console scripts, tiny REDS-shaped data."""

import errno
import io
import os
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import torch
import yaml
from basicsr.utils.matlab_functions import imresize

# tiny REDS-shaped data (LMDBs for training, folders for validation) is made by the library, for gpu-check too
from cnlrn_arch.data_prep.tiny_reds import make_tiny_reds  # noqa: F401
from cnlrn_base.option_file import deep_update

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
DATA_DIR = os.path.join(TESTS_DIR, 'data')

TINY_CNLRN_ARGS = dict(
    n_deblur_blocks=1, n_nlrgs_body=1, n_nlrgs_up1=1, n_nlrgs_up2=1, n_subgroups=1, n_rcabs=1, n_feats=16
)
TINY_CNLRN = dict(type='CNLRN', **TINY_CNLRN_ARGS)
TINY_PREDEBLUR_ARGS = dict(n_feats=16, n_deblur_blocks=1)
TINY_PREDEBLUR = dict(type='CNLRNPreDeblur', **TINY_PREDEBLUR_ARGS)

# for processes on tiny tensors: several threads only wait on each other, for seconds when the cores are busy
ENV = dict(os.environ, OMP_NUM_THREADS='1')


# -- the console scripts ----------------------------------------------------------------------------


def command(name):
    """Path of a console script installed beside the running interpreter."""
    return os.path.join(os.path.dirname(sys.executable), name)


def run_command(name, *args, cwd=None, timeout=600, **env):
    """The installed console script ``name`` run with ``args`` in a fresh process (``env`` added to ENV)."""
    return subprocess.run(
        [command(name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV | env
    )


# a console script's main(argv) in a fresh interpreter, its last line saying whether that imported torch
CALL_MAIN = """
import sys
from {module} import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
print('exit status', status, '| torch imported:', 'torch' in sys.modules)
"""


def run_main_afresh(module, *args, cwd=None):
    """The completed process of ``module``'s ``main(args)`` run in a fresh interpreter, so that no import of the
    tests hides one of its own; its stdout ends with 'exit status S | torch imported: True|False'."""
    return subprocess.run(
        [sys.executable, '-c', CALL_MAIN.format(module=module), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=ENV,
    )


def exit_status(main, argv):
    """Exit status of a console script's ``main(argv)`` run in this process (argparse and sys.exit raise)."""
    try:
        return main(argv) or 0
    except SystemExit as exit_:
        return exit_.code or 0


def assert_one_line_error(stderr, *fragments):
    """``stderr`` is one line, no traceback, naming every fragment."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert 'Traceback' not in stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]


# -- options ---------------------------------------------------------------------------------------


def derive_options(repo_option, dst, changes):
    """Write ``dst``: the project's option file ``repo_option`` (or any absolute path) with ``changes`` merged in."""
    with open(os.path.join(REPO_DIR, repo_option), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    with open(dst, 'w', encoding='utf-8') as f:
        yaml.safe_dump(deep_update(opt, changes), f, sort_keys=False)
    return str(dst)


def tiny_training(tmp_path, data, name='tiny', option='options/demo/joint.yml', **changes):
    """Write ``tmp_path``/<name>.yml: 2 iterations of a tiny CNLRN on tiny ``data``, checkpoint at 2, no validation.

    The rest is ``option``'s (a path under the repository, or an absolute one), with ``changes`` replacing sections.
    """
    opt = dict(
        name=name,
        network_g=TINY_CNLRN,
        path=dict(pretrain_network_deblur=None),
        datasets=dict(
            train=dict(
                dataroot_gt=data['train_sharp'],
                dataroot_lq=data['train_blur_bicubic_X4'],
                gt_size=32,
                batch_size_per_gpu=1,
                num_worker_per_gpu=0,
            ),
            val=None,
        ),
        train=dict(total_iter=2, optim_g=dict(lr_deblur=None), scheduler=dict(periods=[2])),
        val=None,
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False),
    )
    return derive_options(option, tmp_path / f'{name}.yml', {**opt, **changes})


def make_opt(network=TINY_CNLRN, train=None, val=None, speed=None, **path):
    """Options of a tiny CNLRNModel in training, as BasicSR's parse_options hands them to build_model.

    ``train`` is merged into L1 + gradient loss, Adam and a cosine schedule; ``path`` is the path section.
    """
    defaults = dict(
        optim_g=dict(type='Adam', lr=2e-3, betas=[0.9, 0.99]),
        scheduler=dict(type='CosineAnnealingRestartLR', periods=[100], restart_weights=[1], eta_min=1e-7),
        pixel_opt=dict(type='L1Loss', loss_weight=1.0),
        grad_opt=dict(type='GradientLoss', loss_weight=0.1),
    )
    opt = dict(
        name='tiny',
        model_type='CNLRNModel',
        is_train=True,
        dist=False,
        num_gpu=0,
        rank=0,
        world_size=1,
        scale=4,
        network_g=dict(network),
        path=dict(path),
        train=deep_update(defaults, train or {}),
        val=dict(val or {}),
    )
    if speed is not None:
        opt['speed'] = speed
    return opt


# -- images and LMDBs ------------------------------------------------------------------------------


def write_image(path, img):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), img)


def decode_image(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def bicubic(img, scale=1 / 4):
    """MATLAB bicubic resize of a uint8 image by ``scale``, rounded to uint8."""
    return np.clip(np.round(imresize(img.astype(np.float32) / 255.0, scale) * 255.0), 0, 255).astype(np.uint8)


def lmdb_items(path):
    """key -> stored bytes of an LMDB."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = {key.decode(): bytes(value) for key, value in txn.cursor()}
    env.close()
    return items


def folder_contents(root):
    """Everything a command wrote under ``root``: files by relative path, LMDB items as ``<lmdb>/<key>``.

    LMDB data files are compared by their items: the same items may lie on other pages.
    """
    root = str(root)
    contents = {}
    for folder, _, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        if folder.endswith('.lmdb'):
            contents.update({os.path.join(relative, k): v for k, v in lmdb_items(folder).items()})
        for name in files:
            if not name.endswith('.mdb'):
                with open(os.path.join(folder, name), 'rb') as f:
                    contents[os.path.normpath(os.path.join(relative, name))] = f.read()
    return contents


# -- faults ----------------------------------------------------------------------------------------


class FillingFile:
    """A binary file on a disk with room for ``room`` more bytes: a write beyond fails as a full disk does."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        data = bytes(data)
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def disk_fills_half_way(monkeypatch, after=0):
    """Let ``after`` calls of torch.save through; then each finds room for half of its bytes (torch's own writer
    runs: it fails as on a real full disk)."""
    real_save = torch.save
    calls = []

    def save(obj, f):
        calls.append(f)
        if len(calls) <= after:
            return real_save(obj, f)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        return real_save(obj, FillingFile(f, len(buffer.getvalue()) // 2))

    monkeypatch.setattr(torch, 'save', save)


def tiny_infer_output(root, name, *flags):
    """``cnlrn infer`` of the ``infer_setup`` folder's image with its tiny network and ``flags``, into ``root/name``."""
    from cnlrn_cli.main import main

    out = root / name
    argv = ['infer', '-i', str(root / 'x.png'), '-o', str(out), '--weights', str(root / 'w.pth')]
    assert main([*argv, '--opt', str(root / 'tiny.yml'), '--device', 'cpu', *flags]) == 0
    return cv2.imread(str(out / 'x_cnlrn.png'), cv2.IMREAD_UNCHANGED).astype(int)


def infer(*args):
    """``cnlrn infer ARGS`` in this process: its exit status."""
    from cnlrn_cli.main import main

    return main(['infer', *map(str, args)])


def tiny_net(seed=0, **changes):
    """A tiny CNLRN (TINY_CNLRN_ARGS with ``changes``) in eval mode, initialised from ``seed``."""
    from cnlrn_arch.archs.cnlrn_arch import CNLRN

    torch.manual_seed(seed)
    return CNLRN(**{**TINY_CNLRN_ARGS, **changes}).eval()


def noise(shape, dtype=np.uint8, seed=0):
    """Uniform random samples over ``dtype``'s whole range."""
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)


def decoded_frames(path):
    """RGB uint8 frames of the first video stream of ``path``, and their times in seconds."""
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format='rgb24') for f in frames], [f.time for f in frames]


def raw_h264(sizes):
    """A raw H.264 stream of one grey frame per (width, height) in ``sizes``: its header tells only the first size."""
    import av

    data = b''
    for width, height in sizes:
        buffer = io.BytesIO()
        with av.open(buffer, 'w', format='h264') as out:
            stream = out.add_stream('libx264', rate=12)
            stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 80, np.uint8), format='rgb24')
            frame.pts = 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        data += buffer.getvalue()
    return data
