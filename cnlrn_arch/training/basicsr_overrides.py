"""Overrides of basicsr 1.4.2 for CPU-only machines and for exact resumption.

basicsr 1.4.2 assumes a GPU in two places the ``basicsr`` runner passes through:
- ``basicsr.train.load_resume_state`` maps the state onto
  ``torch.cuda.current_device()``;
- ``basicsr.utils.options.init_dist`` always uses NCCL and picks the GPU as
  ``RANK % num_gpus`` (wrong across nodes, a division by zero on CPU).
DistributedDataParallel wrapping, the third place, is handled by
``RobustSRModel.model_to_device``.

And a resumed run of basicsr 1.4.2 replays its epoch from the start, with
other crops: :class:`ResumableSampler` skips the batches already trained on
and hands the data set its epoch, from which (with the seed) it derives each
sample's augmentation, so a resumed run sees the batches of an uninterrupted one.

Two runs with one experiment name would archive and overwrite each other's
folder: :func:`load_resume_state`, which ``train_pipeline`` calls right before
it creates (or archives) the experiment folder, first locks the experiment
(:mod:`.experiment_lock`). And ``basicsr.utils.imwrite`` writes result images in
place and fails with 'Failed in writing images.': :func:`imwrite` writes them
atomically and names the file and the reason. The perceptual loss's VGG19 asks torchvision for its
weights, which downloads them or, offline, fails in a urllib traceback: :class:`CheckedVGGFeatureExtractor`
names the missing file in one line first. basicsr's VGG-style discriminator flattens its features with
``view``, which fails on a channels-last generator output such as CNLRN's: its input is made contiguous.

The runner calls :func:`apply`, which swaps these in as module attributes
(looked up at call time) after checking that basicsr is the release they were
written for; site-packages stay untouched.
"""

import logging
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import basicsr
import basicsr.losses.basic_loss
import basicsr.models.sr_model
import basicsr.test
import basicsr.train
import basicsr.utils.options
import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.archs.vgg_arch import VGGFeatureExtractor
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, make_exp_dirs, scandir
from torch.utils.data import DataLoader, Dataset

from cnlrn_arch.runtime.dist_timeout import DIST_TIMEOUT_MINUTES, dist_timeout_minutes
from cnlrn_arch.training import experiment_lock
from cnlrn_arch.training.vgg_weights import require_vgg19_weights
from cnlrn_base.atomic import atomic_write, write_failure
from cnlrn_base.errors import UserError, first_line

BASICSR_VERSION = '1.4.2'
_dist_timeout_minutes = DIST_TIMEOUT_MINUTES  # what init_dist uses when basicsr passes it no dist_params


def _load_state(path: str) -> dict[str, Any]:
    return torch.load(path, map_location='cpu', weights_only=True)


def _newest_complete_state(opt: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(path, state) of the newest training state that loads and whose network checkpoint exists."""
    state_dir = opt['path']['training_states']
    if not os.path.isdir(state_dir):
        return None, None
    names = [v for v in scandir(state_dir, suffix='.state', recursive=False) if v[: -len('.state')].isdigit()]
    for name in sorted(names, key=lambda v: int(v[: -len('.state')]), reverse=True):
        path = os.path.join(state_dir, name)
        network = os.path.join(opt['path']['models'], f'net_g_{name[: -len(".state")]}.pth')
        if not os.path.isfile(network):
            print(f'auto_resume: skipping {path}: its network checkpoint {network} is missing', flush=True)
            continue
        try:
            return path, _load_state(path)
        except Exception as err:  # a truncated or corrupt file: fall back to an older one
            print(f'auto_resume: skipping {path}: unreadable ({first_line(err)})', flush=True)
    return None, None


def lock_experiment(opt: dict[str, Any], root: str = 'experiments_root', doing: str = 'trained') -> None:
    """Lock the experiment for this run (rank 0 locks: the other ranks belong to the same run).

    Args:
        opt (dict[str, Any]): the parsed options: ``rank``, ``dist`` and ``path:<root>`` are read.
        root (str): the key of the folder to lock under ``path``: 'experiments_root' or 'results_root'.
        doing (str): what this run does there, for the refusal: 'trained' or 'tested'.

    Raises:
        ExperimentLocked: on every rank, when another run trains the experiment.
    """
    refusal = None
    if opt['rank'] == 0:
        try:
            experiment_lock.acquire(opt['path'][root], doing)
        except experiment_lock.ExperimentLocked as err:
            refusal = str(err)
    if opt['dist']:
        # every rank stops alike: a rank left alone would wait for rank 0 at its first collective (forever
        # under slurm, where no torchrun stops the job)
        shared = [refusal]
        dist.broadcast_object_list(shared, src=0)
        refusal = shared[0]
    if refusal is not None:
        raise experiment_lock.ExperimentLocked(refusal)


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """Lock the experiment, pick the state to resume from and load it on the CPU.

    ``train_pipeline`` calls this before it creates or archives the experiment
    folder, so a second run of a running experiment is refused before it touches
    anything (:func:`lock_experiment`). With ``--auto_resume`` the newest
    complete state is used; incomplete ones are named and skipped. Optimizers
    move the state to their parameters' device.

    Args:
        opt (dict[str, Any]): the parsed options; ``path:resume_state``, ``path:pretrain_network_*``,
            ``path:param_key_*`` and ``resume_position`` (epoch, iteration) are set in it when resuming.

    Returns:
        dict[str, Any] | None: the training state, or None when there is nothing to resume from.

    Raises:
        ExperimentLocked: another run trains the experiment.
    """
    lock_experiment(opt)
    if opt['auto_resume']:
        path, resume_state = _newest_complete_state(opt)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    elif opt['path'].get('resume_state'):
        resume_state = _load_state(opt['path']['resume_state'])
    else:
        return None
    check_resume(opt, resume_state['iter'])
    _networks_beside_state(opt, resume_state['iter'])
    if not os.path.isdir(opt['path']['experiments_root']):
        # a state of another experiment resumed under this name: basicsr makes the folders only for new runs
        make_exp_dirs(opt)
    opt['resume_position'] = (resume_state['epoch'], resume_state['iter'])
    # our checkpoints keep weights under 'params'; check_resume only fixes 'params_ema'
    for key in opt:
        if key.startswith('network_'):
            opt['path'][f'param_key_{key[len("network_") :]}'] = 'params'
    return resume_state


def make_result_dirs(opt: dict[str, Any]) -> None:
    """basicsr test's make_exp_dirs, once ``results/<name>`` is locked for this run.

    basicsr archives an existing results folder, so a second test of the same
    name would move the first's images away while it writes them.

    Raises:
        ExperimentLocked: another run tests the experiment; nothing has been moved.
    """
    lock_experiment(opt, 'results_root', 'tested')
    _replaced[make_result_dirs](opt)


def _networks_beside_state(opt: dict[str, Any], resume_iter: int) -> None:
    """Resume the networks from the experiment that wrote ``path:resume_state``.

    basicsr's check_resume looks for them in this experiment's ``models``
    folder, which holds nothing when a state is resumed under another name.
    """
    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(opt['path']['resume_state']))), 'models')
    for key in opt:
        if not key.startswith('network_'):
            continue
        name = f'net_{key[len("network_") :]}_{resume_iter}.pth'
        set_by_check_resume = opt['path'].get(f'pretrain_{key}') == os.path.join(opt['path']['models'], name)
        if set_by_check_resume and os.path.isfile(os.path.join(models, name)):
            opt['path'][f'pretrain_{key}'] = os.path.join(models, name)


def init_dist(launcher: str, backend: str = 'nccl', **kwargs: Any) -> None:
    """Initialise torch.distributed: NCCL on the GPU of LOCAL_RANK, gloo for CPU tensors, a long timeout.

    Args:
        launcher (str): 'pytorch' (torchrun set the environment) or 'slurm' (derived from SLURM's).
        backend (str): the backend for CUDA tensors; CPU tensors always use gloo.
        **kwargs (Any): ``port`` (slurm only: the master port), ``timeout_minutes`` (else the one
            :func:`set_dist_timeout` set), the rest goes to ``init_process_group``.
    """
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if launcher == 'slurm':
        _slurm_environment(kwargs.pop('port', None))
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    timeout = timedelta(minutes=kwargs.pop('timeout_minutes', _dist_timeout_minutes))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        # CPU tensors (num_gpu: 0 on a GPU machine) still need gloo
        backend = f'cpu:gloo,cuda:{backend}'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, timeout=timeout, **kwargs)


def set_dist_timeout(opt: dict[str, Any]) -> None:
    """Make :func:`init_dist` use the options' timeout: basicsr passes ``dist_params`` to it under slurm only.

    Args:
        opt (dict[str, Any]): the options about to run.
    """
    global _dist_timeout_minutes
    _dist_timeout_minutes = dist_timeout_minutes(opt)


def _slurm_environment(port: int | None) -> None:
    """Translate SLURM's variables into torch.distributed's (as basicsr does)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ['MASTER_ADDR'] = subprocess.getoutput(
        f'scontrol show hostname {os.environ["SLURM_NODELIST"]} | head -n1'
    )
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))


class ResumableSampler(EnlargedSampler):
    """EnlargedSampler that tells the data set its epoch and can start an epoch part-way.

    Data sets with ``set_epoch`` receive (epoch, position) pairs, positions in
    the enlarged epoch (they fold them into their range), so that each position
    keeps its own augmentation seed; others get indices as from EnlargedSampler.

    Args:
        dataset (Dataset): the data set sampled from.
        num_replicas (int): number of processes training (the world size).
        rank (int): this process's rank among them.
        ratio (int): how many times an epoch goes over the data set.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, ratio: int = 1) -> None:
        super().__init__(dataset, num_replicas, rank, ratio)
        self.positions = hasattr(dataset, 'set_epoch')
        self.skip: dict[int, int] = {}  # epoch -> samples of it already trained on

    def resume_at(self, epoch: int, iteration: int, batch_size: int) -> None:
        """Skip, in ``epoch``, the batches trained before ``iteration`` (every epoch has the same length).

        Args:
            epoch (int): the epoch the training state was saved in.
            iteration (int): the iteration it was saved after, counted from the start of training.
            batch_size (int): samples per batch on this process.
        """
        batches_per_epoch = self.num_samples // batch_size  # the train loader drops the last partial batch
        self.skip = {epoch: (iteration - epoch * batches_per_epoch) * batch_size}

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        samples = list(super().__iter__()) if not self.positions else self._positions()
        return iter(samples[self.skip.get(self.epoch, 0) :])

    def _positions(self) -> list[tuple[int, int]]:
        """(epoch, position) pairs: the epoch travels with each index, so data loader workers that persist across
        epochs (``persistent_workers: true``), each with its own copy of the data set, augment for the right one."""
        g = torch.Generator()
        g.manual_seed(self.epoch)
        positions = torch.randperm(self.total_size, generator=g).tolist()[
            self.rank : self.total_size : self.num_replicas
        ]
        return [(self.epoch, position) for position in positions]


# basicsr's (train_loader, train_sampler, val_loaders, total_epochs, total_iters)
TrainValLoaders = tuple[DataLoader, EnlargedSampler, list[DataLoader], int, int]


def create_train_val_dataloader(opt: dict[str, Any], logger: logging.Logger) -> TrainValLoaders:
    """basicsr's, with the seed handed to the training set and the sampler placed at the resumed iteration.

    Args:
        opt (dict[str, Any]): the parsed options, with ``resume_position`` when resuming.
        logger (logging.Logger): where the training statistics and the skipped samples are logged.

    Returns:
        TrainValLoaders: basicsr's, the sampler a ResumableSampler placed at ``resume_position``.
    """
    opt['datasets']['train'].setdefault('seed', opt['manual_seed'])
    result = _replaced[create_train_val_dataloader](opt, logger)
    train_sampler = result[1]
    if opt.get('resume_position') and isinstance(train_sampler, ResumableSampler):
        epoch, iteration = opt['resume_position']
        train_sampler.resume_at(epoch, iteration, opt['datasets']['train']['batch_size_per_gpu'])
        logger.info(f'Resuming inside epoch {epoch}: {train_sampler.skip[epoch]} samples already seen are skipped.')
    return result


def imwrite(img: np.ndarray, file_path: str, params: list[int] | None = None, auto_mkdir: bool = True) -> None:
    """basicsr's imwrite, written atomically; a failure names the file and the reason (a full disk, ...).

    Args:
        img (np.ndarray): the image, as for ``cv2.imwrite``.
        file_path (str): where to write it; the extension gives the format.
        params (list[int] | None): OpenCV's encoding parameters.
        auto_mkdir (bool): create the file's folder when it is missing.

    Raises:
        UserError: the image could not be encoded or written; nothing was written under ``file_path`` then.
    """
    ok, encoded = cv2.imencode(os.path.splitext(file_path)[1], img, params or [])
    if not ok:
        raise UserError(f'cannot write {file_path}: OpenCV could not encode the image')
    try:
        if auto_mkdir:
            os.makedirs(os.path.dirname(os.path.abspath(file_path)), exist_ok=True)
        atomic_write(file_path, encoded.tobytes())
    except OSError as err:
        raise UserError(write_failure(file_path, err)) from None


class CheckedVGGFeatureExtractor(VGGFeatureExtractor):
    """basicsr's VGG feature extractor (the perceptual loss's), refusing in one line when VGG19's weights are missing.

    basicsr's own asks torchvision for them, which downloads, or offline ends in a urllib traceback.
    """

    def __init__(self, layer_name_list: list[str], vgg_type: str = 'vgg19', **kwargs: Any) -> None:
        if vgg_type == 'vgg19':
            require_vgg19_weights()
        super().__init__(layer_name_list, vgg_type=vgg_type, **kwargs)


def vgg_style_discriminator_forward(self: VGGStyleDiscriminator, x: torch.Tensor) -> torch.Tensor:
    """VGGStyleDiscriminator's forward on a contiguous input.

    basicsr flattens its features with ``view``, which fails on channels-last tensors, and convolutions keep
    their input's memory format: CNLRN's output is channels-last.

    Args:
        self (VGGStyleDiscriminator): the discriminator.
        x (torch.Tensor): (N, C, H, W) images.
    """
    return _replaced[vgg_style_discriminator_forward](self, x.contiguous())


# (module, attribute, replacement): what apply() checks and swaps; basicsr looks these up at call time
PATCHES: list[tuple[ModuleType | type, str, Callable]] = [
    (basicsr.train, 'load_resume_state', load_resume_state),
    (basicsr.train, 'EnlargedSampler', ResumableSampler),
    (basicsr.train, 'create_train_val_dataloader', create_train_val_dataloader),
    (basicsr.test, 'make_exp_dirs', make_result_dirs),
    # SRModel's validation (basicsr test, and validation while training) writes its result images through it
    (basicsr.models.sr_model, 'imwrite', imwrite),
    # options.py imported init_dist by name; parse_options calls it from there
    (basicsr.utils.options, 'init_dist', init_dist),
    # PerceptualLoss (ESRGAN-style recipes) builds its VGG through the name basic_loss imported
    (basicsr.losses.basic_loss, 'VGGFeatureExtractor', CheckedVGGFeatureExtractor),
    # ESRGAN-style recipes with a generator whose output is channels-last (CNLRN's)
    (VGGStyleDiscriminator, 'forward', vgg_style_discriminator_forward),
]

_replaced: dict[Callable, Callable] = {}  # replacement -> basicsr's own, as the first apply() found it


def _check() -> None:
    """Raise a UserError unless basicsr is the release the patches were written for, with every patched name."""
    if basicsr.__version__ != BASICSR_VERSION:
        raise UserError(
            f'basicsr {basicsr.__version__} is installed, but cnlrn_arch overrides parts of basicsr '
            f'{BASICSR_VERSION}: install basicsr=={BASICSR_VERSION} (see the README)'
        )
    for module, name, replacement in PATCHES:
        current = vars(module).get(name)  # a class patched: its own attribute, not one it inherits
        is_class = isinstance(replacement, type)
        fits = isinstance(current, type) and issubclass(replacement, current) if is_class else callable(current)
        if not fits:
            raise UserError(
                f'basicsr {BASICSR_VERSION} lacks {module.__name__}.{name} (or it is not the '
                f'{"class" if is_class else "function"} cnlrn_arch replaces), so the installation is '
                f'modified: reinstall basicsr=={BASICSR_VERSION} (see the README)'
            )


def apply() -> None:
    """Swap the overrides into basicsr after checking it; calling it again changes nothing.

    Raises:
        UserError: another basicsr release is installed, or one of the attributes in ``PATCHES`` is
            missing or of another kind; nothing has been swapped then.
    """
    _check()
    # MultiStepRestartLR keeps its milestones in a Counter, which training states are loaded with
    torch.serialization.add_safe_globals([Counter])
    for module, name, replacement in PATCHES:
        _replaced.setdefault(replacement, getattr(module, name))
        setattr(module, name, replacement)
