"""BasicSR's SRModel made robust for long runs: any single-network SR model trains through it.

Each concern lives in a collaborator of its own; the model composes them in BasicSR's methods:
- :mod:`.precision`: train/val autocast with the fp16 loss scaler, TF32, channels-last, torch.compile
  (:mod:`cnlrn_arch.runtime.speed`) and deterministic kernels;
- :mod:`.distributed`: DistributedDataParallel on CPU too, and a check that ranks hold the same weights;
- :mod:`.nonfinite_guard`: non-finite updates skipped, too many in a row stop training;
- :mod:`.checkpointing`: atomic checkpoints (a failed write stops training with one line, the last complete
  checkpoint intact), exact fp16 resumption and the checks of a training state before resuming;
- :mod:`.validation`: validations timed and not repeated, x8 self-ensemble testing;
- :mod:`.tensorboard_images`: the first validation images in TensorBoard.
"""

from collections import OrderedDict
from functools import partial
from typing import Any

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

from cnlrn_arch.models.checkpointing import Checkpoints
from cnlrn_arch.models.distributed import check_ranks_in_sync, wrap_for_parallel
from cnlrn_arch.models.nonfinite_guard import NONFINITE_PATIENCE, NonfiniteGuard
from cnlrn_arch.models.precision import Precision, use_deterministic_algorithms
from cnlrn_arch.models.tensorboard_images import ValidationImages
from cnlrn_arch.models.validation import ValidationRuns, restore
from cnlrn_arch.runtime.speed import autocast
from cnlrn_arch.weights.files import load_into, read_state_dict

# torch optimizers with a fused implementation, used unless the options choose ``foreach`` or ``fused``
FUSED_OPTIMIZERS = ('Adam', 'AdamW')


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
        self.precision = Precision(opt)
        self.checkpoints = Checkpoints(opt)
        self.validation_runs = ValidationRuns(opt)
        super().__init__(opt)
        self.precision.check_val_autocast(self.device.type)

    # -- network placement and loading ---------------------------------------------------------

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """Like BaseModel's, but DistributedDataParallel also works on CPU (gloo).

        Args:
            net (nn.Module): the bare network.

        Returns:
            nn.Module: ``net`` on the device, in the memory format of ``speed``, after
            :meth:`prepare_network`, wrapped for DDP or DataParallel when the run uses them.
        """
        net = self.precision.in_memory_format(net.to(self.device), self.device)
        self.prepare_network(net)  # before DDP, which tracks the parameters needing gradients when it wraps
        return wrap_for_parallel(net, self.opt, self.device)

    def prepare_network(self, net: nn.Module) -> None:
        """Hook for subclasses: change the bare network in place before it is wrapped; here nothing.

        Args:
            net (nn.Module): the bare network, already on the device.
        """

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
        """SRModel's losses, optimizer and schedulers, plus ``grad_opt``, the fp16 GradScaler and the guard."""
        train_opt = self.opt['train']
        # here, not in CNLRNModel: a second, edge-aware loss is a recipe choice open to any SR network,
        # and one optimize_parameters then sums every loss
        self.cri_grad = build_loss(train_opt['grad_opt']).to(self.device) if train_opt.get('grad_opt') else None
        self.scaler = self.precision.grad_scaler(self.device.type)
        patience = train_opt.get('nonfinite_patience', NONFINITE_PATIENCE)
        self.nonfinite_guard = NonfiniteGuard(patience, self.opt['dist'], self.device)
        super().init_training_settings()
        if getattr(self, 'net_g_ema', None) is not None:
            self.net_g_ema = self.precision.in_memory_format(self.net_g_ema, self.device)

    def setup_optimizers(self) -> None:
        """One optimizer (``train.optim_g``) over the trainable parameters, grouped by :meth:`param_groups`."""
        optim_opt = dict(self.opt['train']['optim_g'])  # a copy: SRModel's pops 'type' from the options themselves
        optim_type = optim_opt.pop('type')
        if optim_type in FUSED_OPTIMIZERS and 'foreach' not in optim_opt:
            # one kernel over all parameters: the released CNLRN's Adam step took 57 ms instead of 280 on 2 CPU cores
            optim_opt.setdefault('fused', True)
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
        self.lq = data['lq'].to(self.device, memory_format=self.precision.memory_format(self.device))
        self.lq_path = data.get('lq_path')  # names the validation images sent to TensorBoard
        if self.target_key in data:
            self.gt = data[self.target_key].to(self.device)

    def optimize_parameters(self, current_iter: int) -> None:
        """One training step; a non-finite loss or gradient skips it (see ``train.nonfinite_patience``).

        Args:
            current_iter (int): the iteration, for the log and the error messages.
        """
        self.optimizer_g.zero_grad()
        with autocast(self.device, self.precision.train_amp):
            output = self.precision.run(self.net_g)(self.lq)
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
        if not self.nonfinite_guard.update_is_finite(l_total, self.net_g.parameters()):
            self.scaler.update()  # an fp16 overflow lowers the loss scale
            self.optimizer_g.zero_grad()
            self.nonfinite_guard.skipped(current_iter, self.log_dict, self.scaler, self.checkpoints.last())
            return
        self.scaler.step(self.optimizer_g)
        self.scaler.update()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # -- checkpoints ------------------------------------------------------------------------------

    def save(self, epoch: int, current_iter: int) -> None:
        """Save as SRModel does; in distributed runs first check every rank holds the same weights.

        Args:
            epoch (int): the current epoch.
            current_iter (int): the current iteration; -1 saves ``*_latest``.
        """
        if self.opt['dist']:
            check_ranks_in_sync(self.get_bare_model(self.net_g).state_dict(), self.device, current_iter)
        super().save(epoch, current_iter)
        self.checkpoints.saved(current_iter)

    def resume_note(self) -> str:
        """Where a stopped training can go on from: for the one-line messages of a failed save and of Ctrl-C."""
        return self.checkpoints.resume_note()

    @master_only
    def save_network(
        self, net: nn.Module | list[nn.Module], net_label: str, current_iter: int, param_key: str | list[str] = 'params'
    ) -> None:
        """BaseModel.save_network, written atomically with the network's options; a failure is raised, not ignored.

        Args:
            net (nn.Module | list[nn.Module]): the network(s) to save in one file.
            net_label (str): the file name's prefix, e.g. ``net_g``.
            current_iter (int): the file name's iteration; -1 writes ``latest``.
            param_key (str | list[str]): the key of each network's state dict in the file.
        """
        nets = net if isinstance(net, list) else [net]
        param_keys = param_key if isinstance(param_key, list) else [param_key]
        state_dicts = {key: self.get_bare_model(n).state_dict() for n, key in zip(nets, param_keys)}
        self.checkpoints.save_network(state_dicts, net_label, current_iter)

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BaseModel.save_training_state, written atomically after the network checkpoint, with the loss scale.

        Args:
            epoch (int): the current epoch.
            current_iter (int): the current iteration; -1 (the final save) writes nothing.
        """
        self.checkpoints.save_training_state(epoch, current_iter, self.optimizers, self.schedulers, self.scaler)

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        """BaseModel.resume_training after :meth:`Checkpoints.check_resumable`, and the fp16 loss scale when both
        the state and this run have one.

        Args:
            resume_state (dict[str, Any]): a training state written by :meth:`save_training_state`.
        """
        self.checkpoints.check_resumable(resume_state, self.optimizers)
        super().resume_training(resume_state)
        if self.scaler.is_enabled() and 'scaler' in resume_state:
            self.scaler.load_state_dict(resume_state['scaler'])

    # -- testing ----------------------------------------------------------------------------------

    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool = False) -> None:
        """BaseModel.validation, once per iteration and data set, timed (:class:`ValidationRuns`).

        Args:
            dataloader (Any): the validation data loader.
            current_iter (int): the iteration validated after.
            tb_logger (Any): TensorBoard's SummaryWriter or None.
            save_img (bool): whether to save the restored images.
        """
        validate = partial(super().validation, dataloader, tb_logger=tb_logger, save_img=save_img)
        self.validation_runs.run(validate, dataloader.dataset.opt['name'], current_iter)

    def nondist_validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        """SRModel's, and the first ``val.tb_images`` images (default 4) side by side to TensorBoard.

        Under DDP rank 0 runs it (SRModel.dist_validation), the one rank with a tb_logger.

        Args:
            dataloader (Any): the validation data loader.
            current_iter (int): the iteration validated after.
            tb_logger (Any): TensorBoard's SummaryWriter or None (no pictures).
            save_img (bool): whether to save the restored images.
        """
        # get_current_visuals, which SRModel's loop calls once per image, hands each image on
        dataset_name = dataloader.dataset.opt['name']
        self.validation_images = ValidationImages.for_validation(self.opt, tb_logger, dataset_name, current_iter)
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
        self.output = restore(net, self.precision.run(net), self.lq, self.precision.val_amp, use_ensemble)
