"""A run's checkpoints: written atomically (a failed write stops training with one line, the last complete
checkpoint intact), the newest complete one known for messages, and a training state checked before resuming."""

import os
from typing import Any

import torch

from cnlrn_arch.weights.files import plain_data
from cnlrn_base.atomic import atomic_torch_save, write_failure
from cnlrn_base.errors import UserError


class CheckpointNotSaved(UserError):
    """A checkpoint could not be written (a full disk, ...); the message names it and the last complete one."""


class Checkpoints:
    """Writes the network checkpoints and training states of one run, and knows its newest complete one.

    Args:
        opt (dict[str, Any]): the run's options, kept (not copied): ``path.models``, ``path.training_states``,
            ``resume_position`` and the networks' options are read when needed.

    Attributes:
        last_saved_iter (int | None): the iteration of this run's newest checkpoint saved with its training state.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        self.opt = opt
        self.last_saved_iter = None

    def saved(self, current_iter: int) -> None:
        """Note a complete save (network and training state) of ``current_iter``; -1 (``*_latest``) has no state.

        Args:
            current_iter (int): the iteration saved.
        """
        if current_iter != -1:
            self.last_saved_iter = current_iter

    def last(self) -> str | None:
        """The newest network checkpoint saved with its training state: this run's, else the one it resumed from.

        Returns:
            str | None: its path, None when there is none (a fresh run before its first save).
        """
        iteration = self.last_saved_iter
        if iteration is None and self.opt.get('resume_position'):
            iteration = self.opt['resume_position'][1]
        return None if iteration is None else os.path.join(self.opt['path']['models'], f'net_g_{iteration}.pth')

    def resume_note(self) -> str:
        """Where a stopped training can go on from: for the one-line messages of a failed save and of Ctrl-C."""
        last = self.last()
        return f'last complete checkpoint: {last} (resume with --auto_resume)' if last else 'no checkpoint saved yet'

    def write(self, obj: Any, path: str) -> None:
        """atomic_torch_save; a failed write stops training with one line naming the file and the last checkpoint.

        The atomic write leaves that checkpoint, and an older file under ``path``, as they were.

        Args:
            obj (Any): what to save.
            path (str): the file.

        Raises:
            CheckpointNotSaved: when the file could not be written.
        """
        try:
            atomic_torch_save(obj, path)
        except OSError as err:
            raise CheckpointNotSaved(f'{write_failure(path, err)}; training stopped, {self.resume_note()}') from None

    def save_network(self, state_dicts: dict[str, dict[str, torch.Tensor]], net_label: str, current_iter: int) -> None:
        """Write ``<net_label>_<current_iter>.pth`` (``_latest`` for -1) with the network's options as plain data.

        The options (``network_g`` for ``net_g``) let ``cnlrn infer`` and ``cnlrn export`` do without an option
        file; BasicSR's loaders ignore them.

        Args:
            state_dicts (dict[str, dict[str, torch.Tensor]]): each param key's state dict (of a bare network).
            net_label (str): the file name's prefix, e.g. ``net_g``.
            current_iter (int): the file name's iteration; -1 writes ``latest``.
        """
        # contiguous: checkpoints look alike with and without speed:channels_last
        save_dict = {key: {k: v.cpu().contiguous() for k, v in sd.items()} for key, sd in state_dicts.items()}
        options_key = net_label.replace('net_', 'network_', 1)
        if self.opt.get(options_key):
            save_dict[options_key] = plain_data(self.opt[options_key])
        label = 'latest' if current_iter == -1 else current_iter
        self.write(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save_training_state(
        self,
        epoch: int,
        current_iter: int,
        optimizers: list[torch.optim.Optimizer],
        schedulers: list[Any],
        scaler: torch.amp.GradScaler,
    ) -> None:
        """Write ``<current_iter>.state``, BasicSR's training state with the fp16 loss scale when there is one.

        Args:
            epoch (int): the current epoch.
            current_iter (int): the current iteration; -1 (the final save) writes nothing.
            optimizers (list[torch.optim.Optimizer]): the model's optimizers.
            schedulers (list[Any]): the model's learning rate schedulers.
            scaler (torch.amp.GradScaler): the loss scaler, saved when enabled.
        """
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in optimizers],
            'schedulers': [s.state_dict() for s in schedulers],
        }
        if scaler.is_enabled():
            state['scaler'] = scaler.state_dict()  # its loss scale, so a resumed fp16 run continues exactly
        self.write(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def check_resumable(self, resume_state: dict[str, Any], optimizers: list[torch.optim.Optimizer]) -> None:
        """Raise, naming the state file, when this run cannot resume from ``resume_state``.

        Args:
            resume_state (dict[str, Any]): a training state written by :meth:`save_training_state`.
            optimizers (list[torch.optim.Optimizer]): this run's optimizers.

        Raises:
            UserError: when its optimizers hold other parameter groups than this run's (torch would raise a bare
                ValueError), or when its schedule ends before ``train:total_iter`` (basicsr would fail there with
                a TypeError).
        """
        saved = [[len(g['params']) for g in o['param_groups']] for o in resume_state['optimizers']]
        current = [[len(g['params']) for g in o.param_groups] for o in optimizers]
        if saved != current:

            def groups(sizes):
                return '; '.join(f'{len(s)} parameter group(s) of {", ".join(map(str, s))} tensors' for s in sizes)

            raise UserError(
                f'{self.opt["path"]["resume_state"]}: cannot resume: its optimizer has {groups(saved)}, this '
                f"run's has {groups(current)}; train:optim_g:lr_deblur, train:freeze_deblur or network_g "
                'differ from the run that saved it'
            )
        total_iter = self.opt['train'].get('total_iter', 0)
        for scheduler in resume_state['schedulers']:
            if sum(scheduler.get('periods', [total_iter])) < total_iter:
                raise UserError(
                    f'{self.opt["path"]["resume_state"]}: cannot resume to train:total_iter {total_iter}: its '
                    f"scheduler's periods {scheduler['periods']} end at iter {sum(scheduler['periods'])}; to train "
                    'on, start a new run from its weights (path:pretrain_network_g)'
                )
