"""The few functions of basicsr 1.4.2 replaced for a run: only where basicsr offers no hook.

Where basicsr lets a registered class or an option do it, that does it: the
discriminator of the ESRGAN-style recipes is a registered subclass
(``ContiguousVGGStyleDiscriminator``), the option check asks for VGG19's
weights (:mod:`cnlrn_arch.options.vgg_weights`), and the model resumes its
optimizers, schedulers and loss scale (``RobustSRModel.resume_training``). What
is left, :data:`OVERRIDDEN`, are functions basicsr's pipelines call by module
name before or outside anything registered; each entry says why there is no
hook. They make basicsr run on CPU-only machines (:mod:`.distributed_startup`, the
resume state on the CPU), resume exactly (:mod:`.resume`), lock the experiment
for one run (:mod:`.experiment_lock`) and write result images atomically.

:func:`apply` checks that basicsr is the release they were written for, swaps
them in as module attributes (basicsr looks them up at call time; site-packages
stay untouched) and returns an :class:`AppliedOverrides`: a context manager that
puts back what was there when it ends (or on :meth:`AppliedOverrides.undo`).
"""

import logging
import os
from collections.abc import Callable
from functools import partial
from types import ModuleType, TracebackType
from typing import Any

import basicsr
import basicsr.models.sr_model
import basicsr.test
import basicsr.train
import basicsr.utils.options
import cv2
import numpy as np
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import make_exp_dirs
from torch.utils.data import DataLoader

from cnlrn_arch.runtime.dist_timeout import dist_timeout_minutes
from cnlrn_arch.training import experiment_lock
from cnlrn_arch.training.distributed_startup import init_dist
from cnlrn_arch.training.resume import ResumableSampler, newest_complete_state, resume_from
from cnlrn_base.atomic import atomic_write, write_failure
from cnlrn_base.errors import UserError

BASICSR_VERSION = '1.4.2'

# (module, attribute, why basicsr offers no hook for it): what apply() checks and swaps
OVERRIDDEN: list[tuple[ModuleType, str, str]] = [
    (
        basicsr.train,
        'load_resume_state',
        'train_pipeline calls it between parsing the options and making the experiment folder, before it builds '
        'anything registered',
    ),
    (
        basicsr.train,
        'EnlargedSampler',
        'create_train_val_dataloader builds its sampler by name; no option picks one',
    ),
    (
        basicsr.train,
        'create_train_val_dataloader',
        'train_pipeline builds the loaders with it; no option seeds the data set or places the sampler mid-epoch',
    ),
    (
        basicsr.test,
        'make_exp_dirs',
        'test_pipeline archives results/<name> with it before building anything registered',
    ),
    (
        basicsr.models.sr_model,
        'imwrite',
        "SRModel's validation writes its result images through it; the model has no image writer to override",
    ),
    (basicsr.utils.options, 'init_dist', 'parse_options calls it (imported by name) before anything is registered'),
]

# basicsr's own, for the overrides that extend them, whatever is swapped in when they run
_basicsr_create_train_val_dataloader = basicsr.train.create_train_val_dataloader

# basicsr's (train_loader, train_sampler, val_loaders, total_epochs, total_iters)
TrainValLoaders = tuple[DataLoader, EnlargedSampler, list[DataLoader], int, int]


def imwrite(img: np.ndarray, file_path: str, params: list[int] | None = None, auto_mkdir: bool = True) -> None:
    """basicsr's imwrite, written atomically; a failure names the file and the reason (a full disk, ...).

    basicsr's writes in place and fails with 'Failed in writing images.'.

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


class AppliedOverrides:
    """The overrides of one run while they are swapped in; leaving the ``with`` block or :meth:`undo` ends them.

    Args:
        opt (dict[str, Any] | None): the run's checked options: ``dist_params:timeout_minutes`` is read.
        resume_state (dict[str, Any] | None): the training state ``path:resume_state`` names, read once
            already (:func:`cnlrn_arch.training.resume.read_training_state`); None without one.

    Attributes:
        parsed_opt (dict[str, Any] | None): the options as basicsr's train_pipeline parsed them (with the
            experiment's folders), once it reached :meth:`load_resume_state`; None before.
    """

    def __init__(self, opt: dict[str, Any] | None = None, resume_state: dict[str, Any] | None = None) -> None:
        self.resume_state = resume_state
        self.parsed_opt: dict[str, Any] | None = None
        self._replacements: dict[str, Callable] = {
            'load_resume_state': self.load_resume_state,
            'EnlargedSampler': ResumableSampler,
            'create_train_val_dataloader': self.create_train_val_dataloader,
            'make_exp_dirs': self.make_result_dirs,
            'imwrite': imwrite,
            # basicsr passes dist_params to init_dist under slurm only: the options' timeout under torchrun too
            'init_dist': partial(init_dist, default_timeout_minutes=dist_timeout_minutes(opt or {})),
        }
        self._swapped: list[tuple[ModuleType, str, Any]] = []  # (module, name, what was there)

    def swap_in(self) -> None:
        """Check basicsr, then swap every override in.

        Raises:
            UserError: another basicsr release is installed, or an attribute of :data:`OVERRIDDEN` is missing
                or of another kind; nothing has been swapped then.
        """
        _check_basicsr(self._replacements)
        for module, name, _ in OVERRIDDEN:
            self._swapped.append((module, name, getattr(module, name)))
            setattr(module, name, self._replacements[name])

    def undo(self) -> None:
        """Put back what each override replaced and release the experiment this run locked; again: nothing."""
        for module, name, before in reversed(self._swapped):
            setattr(module, name, before)
        self._swapped.clear()
        # the process may go on (tests run pipelines in it): the experiment is free once its run ended
        experiment_lock.release()

    def __enter__(self) -> 'AppliedOverrides':
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.undo()

    def load_resume_state(self, opt: dict[str, Any]) -> dict[str, Any] | None:
        """Lock the experiment and give the state to resume from, on the CPU: basicsr's puts it on the GPU.

        ``train_pipeline`` calls this before it creates or archives the experiment folder, so a second run of a
        running experiment is refused before it touches anything. With ``--auto_resume`` the newest complete
        state is read (incomplete ones are named and skipped); otherwise the one read before the run.

        Args:
            opt (dict[str, Any]): the parsed options; see :func:`.resume.resume_from` for what is set in them.

        Returns:
            dict[str, Any] | None: the training state, or None when there is nothing to resume from.

        Raises:
            ExperimentLocked: another run trains the experiment.
        """
        self.parsed_opt = opt
        experiment_lock.lock_experiment(opt)
        if opt['auto_resume']:
            path, state = newest_complete_state(opt)
            if path is None:
                return None
            opt['path']['resume_state'] = path
        elif opt['path'].get('resume_state'):
            state = self.resume_state
        else:
            return None
        resume_from(opt, state)
        return state

    def create_train_val_dataloader(self, opt: dict[str, Any], logger: logging.Logger) -> TrainValLoaders:
        """basicsr's, with the seed handed to the training set and the sampler placed at the resumed iteration.

        Args:
            opt (dict[str, Any]): the parsed options, with ``resume_position`` when resuming.
            logger (logging.Logger): where the training statistics and the skipped samples are logged.

        Returns:
            TrainValLoaders: basicsr's, the sampler a ResumableSampler placed at ``resume_position``.
        """
        opt['datasets']['train'].setdefault('seed', opt['manual_seed'])
        result = _basicsr_create_train_val_dataloader(opt, logger)
        train_sampler = result[1]
        if opt.get('resume_position') and isinstance(train_sampler, ResumableSampler):
            epoch, iteration = opt['resume_position']
            train_sampler.resume_at(epoch, iteration, opt['datasets']['train']['batch_size_per_gpu'])
            logger.info(f'Resuming inside epoch {epoch}: {train_sampler.skip[epoch]} samples already seen are skipped.')
        return result

    def make_result_dirs(self, opt: dict[str, Any]) -> None:
        """basicsr test's make_exp_dirs, once ``results/<name>`` is locked for this run.

        basicsr archives an existing results folder, so a second test of the same
        name would move the first's images away while it writes them.

        Raises:
            ExperimentLocked: another run tests the experiment; nothing has been moved.
        """
        experiment_lock.lock_experiment(opt, 'results_root', 'tested')
        make_exp_dirs(opt)


def _check_basicsr(replacements: dict[str, Callable]) -> None:
    """Raise a UserError unless basicsr is the release the overrides were written for, with every overridden name."""
    if basicsr.__version__ != BASICSR_VERSION:
        raise UserError(
            f'basicsr {basicsr.__version__} is installed, but cnlrn_arch overrides parts of basicsr '
            f'{BASICSR_VERSION}: install basicsr=={BASICSR_VERSION} (see the README)'
        )
    for module, name, _ in OVERRIDDEN:
        current, replacement = vars(module).get(name), replacements[name]
        is_class = isinstance(replacement, type)
        fits = isinstance(current, type) and issubclass(replacement, current) if is_class else callable(current)
        if not fits:
            raise UserError(
                f'basicsr {BASICSR_VERSION} lacks {module.__name__}.{name} (or it is not the '
                f'{"class" if is_class else "function"} cnlrn_arch replaces), so the installation is '
                f'modified: reinstall basicsr=={BASICSR_VERSION} (see the README)'
            )


def apply(opt: dict[str, Any] | None = None, resume_state: dict[str, Any] | None = None) -> AppliedOverrides:
    """Swap the overrides into basicsr after checking it, until the returned object's ``with`` block ends.

    Args:
        opt (dict[str, Any] | None): the run's checked options (``dist_params``); None: the defaults.
        resume_state (dict[str, Any] | None): the state ``path:resume_state`` names, read already.

    Returns:
        AppliedOverrides: the overrides swapped in; its :meth:`~AppliedOverrides.undo` puts basicsr's back.

    Raises:
        UserError: another basicsr release is installed, or an attribute of :data:`OVERRIDDEN` is missing or
            of another kind; nothing has been swapped then.
    """
    applied = AppliedOverrides(opt, resume_state)
    applied.swap_in()
    return applied
