"""BasicSR's SRModel made robust for long runs: any single-network SR model trains through it.

It survives non-finite updates, writes checkpoints atomically (a failed write
stops training with one line, the last complete checkpoint intact), resumes fp16
runs exactly, runs DistributedDataParallel on CPU too, checks that ranks hold
the same weights, and offers the speed options (``train: {amp}``, ``val:
{amp}``, ``speed: {channels_last, compile}``, see :mod:`cnlrn_arch.runtime.speed`),
determinism and x8 self-ensemble testing.
"""

import hashlib
import os
import time
from collections import OrderedDict
from typing import Any

import torch
import torch.distributed as dist
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from cnlrn_arch.models.tensorboard_images import DEFAULT_TB_IMAGES, ValidationImages
from cnlrn_arch.runtime.dist_timeout import dist_timeout_minutes
from cnlrn_arch.runtime.self_ensemble import self_ensemble
from cnlrn_arch.runtime.speed import autocast, check_autocast, compiled, parse_speed, to_memory_format, use_tf32
from cnlrn_arch.weights.files import hash_tensors, load_into, plain_data, read_state_dict
from cnlrn_base.atomic import atomic_torch_save, write_failure
from cnlrn_base.errors import UserError

# consecutive non-finite updates tolerated before training stops
NONFINITE_PATIENCE = 10


class TrainingDiverged(UserError):
    """Too many non-finite updates in a row; the message names the last good checkpoint."""


class CheckpointNotSaved(UserError):
    """A checkpoint could not be written (a full disk, ...); the message names it and the last complete one."""


def use_deterministic_algorithms() -> None:
    """Make runs with the same seed repeat exactly (slower on GPU)."""
    # cuBLAS needs a fixed workspace to be deterministic; effective if set before its first use
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@MODEL_REGISTRY.register()
class RobustSRModel(SRModel):
    """SRModel with guarded updates, atomic checkpoints, CPU DDP, speed options and self-ensemble.

    Options beyond SRModel's:
        train.grad_opt: optional second loss (e.g. ``GradientLoss``) added to pixel_opt.
        val.self_ensemble: average over the 8 flips/rotations when testing.
        val.tb_images: the first this many validation images (default 4, 0: none) go to TensorBoard each
            validation: blurry input bicubic-upscaled | output | target (:mod:`.tensorboard_images`).
        train.nonfinite_patience: a non-finite loss or gradient skips its update;
            this many in a row (default 10) stop training.
        deterministic: true makes runs with the same ``manual_seed`` repeat exactly.
        dist_params.timeout_minutes: how long the other ranks may wait while rank 0 validates
            (default 60); validation logs its duration, and warns when it comes near that.
        train.amp: ~ or 'fp32', 'bf16', 'fp16': autocast the forward pass (losses stay
            float32); fp16 scales the loss with a GradScaler, saved in the training state.
        val.amp: the same for validation and testing; ~ follows train.amp.
        speed.channels_last: network weights and inputs in NHWC memory order.
        speed.compile: true or torch.compile's arguments ({mode, backend, dynamic,
            fullgraph}); saved checkpoints keep the plain network's keys.
        speed.tf32: true lets GPUs compute float32 convolutions and matmuls in TF32 (default false).

    Subclasses may set ``target_key`` (the batch entry the output is compared
    with), adjust the bare network in :meth:`prepare_network` and split the
    optimizer's parameters in :meth:`param_groups`.
    """

    target_key = 'gt'

    def __init__(self, opt: dict[str, Any]) -> None:
        """Build, place and load ``network_g``; with ``is_train``, its losses and optimizer.

        Args:
            opt (dict[str, Any]): the parsed options (see the class docstring for those read here).
        """
        if opt.get('deterministic'):
            use_deterministic_algorithms()
        self.train_amp, self.val_amp, self.speed = parse_speed(opt)
        if not opt['dist'] and opt['num_gpu'] > 1 and (self.train_amp or self.val_amp):
            # torch's DataParallel re-enters autocast in each replica's thread without its dtype, and the dtype is
            # per thread: every replica would compute in float16, bf16 asked or not, and without a loss scaler
            raise UserError(
                'train:amp / val:amp do not work with num_gpu > 1 in one process (DataParallel): run one process '
                'per GPU, torchrun --nproc_per_node=N -m cnlrn_arch.train -opt X.yml --launcher pytorch'
            )
        use_tf32(self.speed.tf32)
        self.compiled_nets = {}  # module -> its torch.compile wrapper, made at first use
        self.nonfinite_in_a_row = 0
        self.last_saved_iter = None  # iteration of this run's newest checkpoint saved with its training state
        self.validated = set()  # (iteration, data set name) of each validation of this run
        super().__init__(opt)
        check_autocast(self.device.type, self.val_amp, 'val:amp')

    # -- network placement and loading ---------------------------------------------------------

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """Like BaseModel's, but DistributedDataParallel also works on CPU (gloo).

        Args:
            net (nn.Module): the bare network.

        Returns:
            nn.Module: ``net`` on the device, in the memory format of ``speed``, after
            :meth:`prepare_network`, wrapped for DDP or DataParallel when the run uses them.
        """
        net = to_memory_format(net.to(self.device), self.speed)
        self.prepare_network(net)  # before DDP, which tracks the parameters needing gradients when it wraps
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False)
            )
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    def prepare_network(self, net: nn.Module) -> None:
        """Hook for subclasses: change the bare network in place before it is wrapped; here nothing.

        Args:
            net (nn.Module): the bare network, already on the device.
        """

    def run(self, net: nn.Module) -> nn.Module:
        """``net`` as it runs: compiled when ``speed.compile`` is set, else itself.

        The attributes ``net_g`` and ``net_g_ema`` stay the plain modules, so
        state dicts, EMA and loading see the keys of the released weights.

        Args:
            net (nn.Module): ``net_g`` or ``net_g_ema``.

        Returns:
            nn.Module: the module to call.
        """
        if net not in self.compiled_nets:
            self.compiled_nets[net] = compiled(net, self.speed)
        return self.compiled_nets[net]

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True, param_key: str = 'params') -> None:
        """BaseModel.load_network with ``weights_only=True`` and one-line errors.

        Args:
            net (nn.Module): the network to load into (wrapped or bare).
            load_path (str): the checkpoint: a PyTorch file or a ``.safetensors`` file.
            strict (bool): whether keys and shapes must match exactly.
            param_key (str): the entry of the checkpoint holding the state dict.
        """
        state_dict = read_state_dict(load_path, param_key)
        net = self.get_bare_model(net)
        mismatch = load_into(net, state_dict, load_path, strict)
        logger = get_root_logger()
        logger.info(f'Loaded {type(net).__name__} from {load_path} (param key {param_key!r}).')
        if mismatch:
            logger.warning(f'Non-strict load, skipped: {mismatch}')

    # -- training ---------------------------------------------------------------------------------

    def init_training_settings(self) -> None:
        """SRModel's losses, optimizer and schedulers, plus ``grad_opt`` and the fp16 GradScaler."""
        train_opt = self.opt['train']
        # here, not in CNLRNModel: a second, edge-aware loss is a recipe choice open to any SR network,
        # and one optimize_parameters then sums every loss
        self.cri_grad = build_loss(train_opt['grad_opt']).to(self.device) if train_opt.get('grad_opt') else None
        check_autocast(self.device.type, self.train_amp, 'train:amp')
        # disabled (every call a pass-through) unless fp16, whose small range needs the loss scaled
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.train_amp == torch.float16)
        super().init_training_settings()
        if getattr(self, 'net_g_ema', None) is not None:
            self.net_g_ema = to_memory_format(self.net_g_ema, self.speed)

    def setup_optimizers(self) -> None:
        """One optimizer (``train.optim_g``) over the trainable parameters, grouped by :meth:`param_groups`."""
        optim_opt = dict(self.opt['train']['optim_g'])  # a copy: SRModel's pops 'type' from the options themselves
        optim_type = optim_opt.pop('type')
        named = [(k, v) for k, v in self.get_bare_model(self.net_g).named_parameters() if v.requires_grad]
        self.optimizer_g = self.get_optimizer(optim_type, self.param_groups(named, optim_opt), **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def param_groups(self, named: list[tuple[str, nn.Parameter]], optim_opt: dict[str, Any]) -> list[dict[str, Any]]:
        """Hook for subclasses: the optimizer's parameter groups; here one.

        Args:
            named (list[tuple[str, nn.Parameter]]): the trainable parameters with their state dict keys.
            optim_opt (dict[str, Any]): ``train.optim_g`` without its type; an override takes out the
                options it reads, the rest go to the optimizer.

        Returns:
            list[dict[str, Any]]: torch.optim parameter groups.
        """
        return [{'params': [v for _, v in named]}]

    def feed_data(self, data: dict[str, torch.Tensor]) -> None:
        """Take the input ``lq`` and, when the batch has it, the target ``data[self.target_key]``.

        Args:
            data (dict[str, torch.Tensor]): a batch of the data loader.
        """
        memory_format = torch.channels_last if self.speed.channels_last else torch.preserve_format
        self.lq = data['lq'].to(self.device, memory_format=memory_format)
        self.lq_path = data.get('lq_path')  # names the validation images sent to TensorBoard
        if self.target_key in data:
            self.gt = data[self.target_key].to(self.device)

    def optimize_parameters(self, current_iter: int) -> None:
        """One training step; a non-finite loss or gradient skips it (see ``train.nonfinite_patience``).

        Args:
            current_iter (int): the iteration, for the log and the error messages.
        """
        self.optimizer_g.zero_grad()
        with autocast(self.device, self.train_amp):
            output = self.run(self.net_g)(self.lq)
        self.output = output.float()  # losses in float32 outside autocast
        loss_dict = OrderedDict()
        if self.cri_pix is not None:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual is not None:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            loss_dict.update({k: v for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None})
        if self.cri_grad is not None:
            loss_dict['l_grad'] = self.cri_grad(self.output, self.gt)
        l_total = sum(loss_dict.values())
        self.scaler.scale(l_total).backward()
        self.scaler.unscale_(self.optimizer_g)  # the finiteness check sees the true gradients
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if not self._update_is_finite(l_total):
            self.scaler.update()  # an fp16 overflow lowers the loss scale
            self._skip_update(current_iter)
            return
        self.nonfinite_in_a_row = 0
        self.scaler.step(self.optimizer_g)
        self.scaler.update()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _update_is_finite(self, loss: torch.Tensor) -> bool:
        """Loss and gradients finite, on every rank (all ranks must skip alike under DDP)."""
        grads = [p.grad for p in self.net_g.parameters() if p.grad is not None]
        # a norm is finite only where every element is; one fused kernel per device and dtype (on CUDA), where
        # a check per tensor launched two kernels for each of CNLRN's 1,092 parameter tensors
        finite = torch.isfinite(loss) & torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
        if self.opt['dist']:
            finite = finite.to(self.device, torch.int32)
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite)

    def _skip_update(self, current_iter: int) -> None:
        """Drop a non-finite update; stop after ``train.nonfinite_patience`` of them in a row."""
        self.optimizer_g.zero_grad()
        self.nonfinite_in_a_row += 1
        losses = ', '.join(f'{k}={v:.4g}' for k, v in self.log_dict.items())
        scale = f', fp16 loss scale now {self.scaler.get_scale():g}' if self.scaler.is_enabled() else ''
        get_root_logger().warning(
            f'iter {current_iter}: non-finite loss or gradient ({losses}); update skipped '
            f'({self.nonfinite_in_a_row} in a row{scale})'
        )
        if self.nonfinite_in_a_row >= self.opt['train'].get('nonfinite_patience', NONFINITE_PATIENCE):
            raise TrainingDiverged(
                f'training stopped at iter {current_iter} after {self.nonfinite_in_a_row} '
                f'non-finite updates in a row; last good checkpoint: {self.last_checkpoint() or "none saved yet"} '
                '(lower the learning rate, then resume with --auto_resume)'
            )

    # -- checkpoints ------------------------------------------------------------------------------

    def save(self, epoch: int, current_iter: int) -> None:
        """Save as SRModel does; in distributed runs first check every rank holds the same weights.

        Args:
            epoch (int): the current epoch.
            current_iter (int): the current iteration; -1 saves ``*_latest``.
        """
        if self.opt['dist']:
            self.check_ranks_in_sync(current_iter)
        super().save(epoch, current_iter)
        if current_iter != -1:  # *_latest has no training state to resume from
            self.last_saved_iter = current_iter

    def last_checkpoint(self) -> str | None:
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
        last = self.last_checkpoint()
        return f'last complete checkpoint: {last} (resume with --auto_resume)' if last else 'no checkpoint saved yet'

    def _write(self, obj: Any, path: str) -> None:
        """atomic_torch_save; a failed write stops training with one line naming the file and the last checkpoint.

        The atomic write leaves that checkpoint, and an older file under ``path``, as they were.
        """
        try:
            atomic_torch_save(obj, path)
        except OSError as err:
            raise CheckpointNotSaved(f'{write_failure(path, err)}; training stopped, {self.resume_note()}') from None

    @master_only
    def save_network(
        self, net: nn.Module | list[nn.Module], net_label: str, current_iter: int, param_key: str | list[str] = 'params'
    ) -> None:
        """BaseModel.save_network, written atomically; a failure is raised, not ignored.

        The file also holds the network's options (``network_g`` for ``net_g``) as plain data,
        so ``cnlrn infer`` and ``cnlrn export`` need no option file; BasicSR's loaders ignore them.

        Args:
            net (nn.Module | list[nn.Module]): the network(s) to save in one file.
            net_label (str): the file name's prefix, e.g. ``net_g``.
            current_iter (int): the file name's iteration; -1 writes ``latest``.
            param_key (str | list[str]): the key of each network's state dict in the file.
        """
        nets = net if isinstance(net, list) else [net]
        param_keys = param_key if isinstance(param_key, list) else [param_key]
        # contiguous: checkpoints look alike with and without speed:channels_last
        save_dict = {
            key: {k: v.cpu().contiguous() for k, v in self.get_bare_model(n).state_dict().items()}
            for n, key in zip(nets, param_keys)
        }
        options_key = net_label.replace('net_', 'network_', 1)
        if self.opt.get(options_key):
            save_dict[options_key] = plain_data(self.opt[options_key])
        label = 'latest' if current_iter == -1 else current_iter
        self._write(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BaseModel.save_training_state, written atomically after the network checkpoint.

        Args:
            epoch (int): the current epoch.
            current_iter (int): the current iteration; -1 (the final save) writes nothing.
        """
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        if self.scaler.is_enabled():
            state['scaler'] = self.scaler.state_dict()  # its loss scale, so a resumed fp16 run continues exactly
        self._write(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        """BaseModel.resume_training, and the fp16 loss scale when both the state and this run have one.

        Args:
            resume_state (dict[str, Any]): a training state written by :meth:`save_training_state`.

        Raises:
            UserError: naming the state file, when its optimizers hold other parameter groups than this
                run's (torch would raise a bare ValueError), or when its schedule ends before
                ``train:total_iter`` (basicsr would fail there with a TypeError).
        """
        saved = [[len(g['params']) for g in o['param_groups']] for o in resume_state['optimizers']]
        current = [[len(g['params']) for g in o.param_groups] for o in self.optimizers]
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
        super().resume_training(resume_state)
        if self.scaler.is_enabled() and 'scaler' in resume_state:
            self.scaler.load_state_dict(resume_state['scaler'])

    def check_ranks_in_sync(self, current_iter: int) -> None:
        """Compare a hash of this rank's parameters with every other rank's; raise if they differ.

        Args:
            current_iter (int): the iteration, for the log line and the error.
        """
        digest = hash_tensors(hashlib.sha256(), self.get_bare_model(self.net_g).state_dict())
        local = torch.tensor(list(digest.digest()[:8]), dtype=torch.int64, device=self.device)
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, local)
        hashes = [bytes(t.tolist()).hex() for t in gathered]
        if len(set(hashes)) != 1:
            raise RuntimeError(f'iter {current_iter}: ranks hold different weights (hashes {hashes})')
        get_root_logger().info(
            f'iter {current_iter}: weights identical on all {len(hashes)} ranks (sha256 prefix {hashes[0]})'
        )

    # -- testing ----------------------------------------------------------------------------------

    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool = False) -> None:
        """BaseModel.validation, timed: under DDP the other ranks wait for rank 0's, up to the timeout.

        Args:
            dataloader (Any): the validation data loader.
            current_iter (int): the iteration validated after.
            tb_logger (Any): TensorBoard's SummaryWriter or None.
            save_img (bool): whether to save the restored images.
        """
        logger = get_root_logger()
        total_iter = self.opt['train'].get('total_iter') if self.is_train else None
        if total_iter is not None and current_iter > total_iter:
            # basicsr validates once more after its loop, with the count that loop ended at: total_iter + 1 or 2
            current_iter = total_iter
        done = (current_iter, dataloader.dataset.opt['name'])
        if done in self.validated:
            logger.info(f'Validation of {done[1]} at iter {current_iter} done already: the weights are the same.')
            return
        start = time.perf_counter()
        super().validation(dataloader, current_iter, tb_logger, save_img)
        self.validated.add(done)
        seconds = time.perf_counter() - start
        logger.info(f'Validation at iter {current_iter} took {seconds:.0f} s.')
        timeout = dist_timeout_minutes(self.opt)
        if self.opt['dist'] and seconds > 30 * timeout:
            logger.warning(
                f'Validation took {seconds:.0f} s, over half of dist_params:timeout_minutes ({timeout:g}), for which '
                'the other ranks wait: raise it, or validate less often or on fewer images'
            )

    def nondist_validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        """SRModel's, and the first ``val.tb_images`` images (default 4) side by side to TensorBoard.

        Under DDP rank 0 runs it (SRModel.dist_validation), the one rank with a tb_logger.

        Args:
            dataloader (Any): the validation data loader.
            current_iter (int): the iteration validated after.
            tb_logger (Any): TensorBoard's SummaryWriter or None (no pictures).
            save_img (bool): whether to save the restored images.
        """
        count = self.opt['val'].get('tb_images', DEFAULT_TB_IMAGES) if tb_logger is not None else 0
        # get_current_visuals, which SRModel's loop calls once per image, hands each image on
        self.validation_images = ValidationImages(tb_logger, dataloader.dataset.opt['name'], current_iter, count)
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.validation_images = None

    def get_current_visuals(self) -> OrderedDict[str, torch.Tensor]:
        """SRModel's 'lq', 'result' and 'gt' on the CPU; during validation also sent on to TensorBoard."""
        visuals = super().get_current_visuals()
        if getattr(self, 'validation_images', None) is not None:
            self.validation_images.add(self.lq_path[0], visuals)
        return visuals

    def test(self) -> None:
        """Restore ``self.lq`` into ``self.output`` (float32) with the EMA network when there is one."""
        net = getattr(self, 'net_g_ema', None) or self.net_g
        use_ensemble = (self.opt.get('val') or {}).get('self_ensemble', False)
        run = self.run(net)

        def forward(x):
            return run(x).float()  # tensor2img, the metrics and the ensemble's average want float32

        was_training = net.training
        net.eval()
        with torch.no_grad(), autocast(self.device, self.val_amp):
            self.output = self_ensemble(forward, self.lq) if use_ensemble else forward(self.lq)
        net.train(was_training)
