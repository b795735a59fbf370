"""Two-stage training of CNLRN on BasicSR's SRModel.

``train: {stage: pretrain}``: network ``CNLRNPreDeblur``, input ``lq``,
target ``gt_lr`` (the sharp LR frame), L1.
``train: {stage: joint}``: network ``CNLRN``, target ``gt``, L1 + Sobel
gradient loss; ``path: {pretrain_network_deblur: ...}`` initialises the
deblurring module from a pre-training checkpoint; ``optim_g: {lr_deblur: ...}``
gives that module its own learning rate.

``train: {amp: bf16|fp16}``, ``val: {amp: ...}`` and ``speed: {channels_last,
compile}`` trade exactness for speed; see :mod:`cnlrn_arch.utils.speed`.
"""
import hashlib
import os
from collections import OrderedDict

import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel

from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from ..utils.atomic import atomic_torch_save
from ..utils.errors import UserError
from ..utils.self_ensemble import self_ensemble
from ..utils.speed import autocast, check_autocast, compiled, parse_speed, to_memory_format
from ..utils.weights import first_items, load_into, read_state_dict

STAGES = ('pretrain', 'joint')
# consecutive non-finite updates tolerated before training stops
NONFINITE_PATIENCE = 10


class TrainingDiverged(UserError):
    """Too many non-finite updates in a row; the message names the last good checkpoint."""


def use_deterministic_algorithms():
    """Make runs with the same seed repeat exactly (slower on GPU)."""
    # cuBLAS needs a fixed workspace to be deterministic; effective if set before its first use
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
DEBLUR_PREFIX = 'DeblurNet.'


@MODEL_REGISTRY.register()
class CNLRNModel(SRModel):
    """SRModel with CNLRN's two training stages.

    Options beyond SRModel's:
        train.stage: 'pretrain' or 'joint'; without it, 'pretrain' for
            ``CNLRNPreDeblur`` and 'joint' otherwise.
        train.grad_opt: optional second loss (``GradientLoss``) added to pixel_opt.
        train.freeze_deblur: true keeps ``DeblurNet`` fixed (separate training).
        train.optim_g.lr_deblur: learning rate of ``DeblurNet`` in joint training
            (default: the same as ``lr``).
        path.pretrain_network_deblur / path.param_key_deblur: pre-training
            checkpoint loaded into ``DeblurNet`` only (image head dropped).
        val.self_ensemble: average over the 8 flips/rotations when testing.
        train.nonfinite_patience: a non-finite loss or gradient skips its update;
            this many in a row (default 10) stop training.
        deterministic: true makes runs with the same ``manual_seed`` repeat exactly.
        train.amp: ~ or 'fp32', 'bf16', 'fp16': autocast the forward pass (losses stay
            float32); fp16 scales the loss with a GradScaler, saved in the training state.
        val.amp: the same for validation and testing; ~ follows train.amp.
        speed.channels_last: network weights and inputs in NHWC memory order.
        speed.compile: true or torch.compile's arguments ({mode, backend, dynamic,
            fullgraph}); saved checkpoints keep the plain network's keys.
    """

    def __init__(self, opt):
        if opt.get('deterministic'):
            use_deterministic_algorithms()
        self.stage = self._stage(opt)
        self.train_amp, self.val_amp, self.speed = parse_speed(opt)
        self.compiled_nets = {}  # module -> its torch.compile wrapper, made at first use
        self.nonfinite_in_a_row = 0
        self.last_saved_iter = None
        # the pre-training network outputs the sharp LR image
        self.target_key = 'gt_lr' if self.stage == 'pretrain' else 'gt'
        super().__init__(opt)
        check_autocast(self.device.type, self.val_amp, 'val:amp')
        path_opt = self.opt['path']
        deblur_path = path_opt.get('pretrain_network_deblur')
        if deblur_path is None:
            return
        if path_opt.get('resume_state'):
            # the resumed checkpoint already holds the jointly trained DeblurNet
            get_root_logger().info(f'Resuming: path:pretrain_network_deblur ({deblur_path}) is not loaded.')
        elif path_opt.get('pretrain_network_g'):
            raise UserError('path:pretrain_network_g and path:pretrain_network_deblur are both set; the second '
                            'would overwrite the deblurring weights of the first: set one to ~')
        else:
            self.load_deblur_network(deblur_path, path_opt.get('param_key_deblur', 'params'))

    @staticmethod
    def _stage(opt):
        """train.stage, or for testing (no train section) the stage the network belongs to."""
        net_type = opt['network_g'].get('type')
        is_predeblur = net_type == 'CNLRNPreDeblur'
        stage = (opt.get('train') or {}).get('stage') or ('pretrain' if is_predeblur else 'joint')
        if stage not in STAGES:
            raise UserError(f'train:stage must be one of {STAGES}, got {stage!r}')
        if (stage == 'pretrain') != is_predeblur:
            need = 'CNLRNPreDeblur' if stage == 'pretrain' else 'a super-resolution network (e.g. CNLRN)'
            raise UserError(f'train:stage {stage!r} needs network_g:type {need}, got {net_type!r}')
        return stage

    # -- network placement and loading ---------------------------------------------------------

    def model_to_device(self, net):
        """Like BaseModel's, but DistributedDataParallel also works on CPU (gloo)."""
        net = to_memory_format(net.to(self.device), self.speed)
        if self.is_train and self.opt['train'].get('freeze_deblur'):
            self.freeze_deblur(net)  # before DDP, which only tracks parameters that need gradients
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    def run(self, net):
        """``net`` as it runs: compiled when ``speed.compile`` is set, else itself.

        The attributes ``net_g`` and ``net_g_ema`` stay the plain modules, so
        state dicts, EMA and loading see the keys of the released weights.
        """
        if net not in self.compiled_nets:
            self.compiled_nets[net] = compiled(net, self.speed)
        return self.compiled_nets[net]

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BaseModel.load_network with ``weights_only=True`` and one-line errors."""
        state_dict = read_state_dict(load_path, param_key)
        net = self.get_bare_model(net)
        mismatch = load_into(net, state_dict, load_path, strict)
        logger = get_root_logger()
        logger.info(f'Loaded {type(net).__name__} from {load_path} (param key {param_key!r}).')
        if mismatch:
            logger.warning(f'Non-strict load, skipped: {mismatch}')

    def load_deblur_network(self, path, param_key):
        """Load the ``DeblurNet`` weights of a pre-training checkpoint; drop the rest."""
        deblur = getattr(self.get_bare_model(self.net_g), 'DeblurNet', None)
        if deblur is None:
            raise UserError(f'path:pretrain_network_deblur needs a network with a DeblurNet module, '
                            f"got {self.opt['network_g']['type']}")
        loaded = read_state_dict(path, param_key)
        wanted = deblur.state_dict()
        state = {k[len(DEBLUR_PREFIX):]: v for k, v in loaded.items() if k.startswith(DEBLUR_PREFIX)}
        used = {k: v for k, v in state.items() if k in wanted}
        dropped = sorted(set(loaded) - {DEBLUR_PREFIX + k for k in used})
        missing = [k for k in wanted if k not in used]
        if missing:
            raise UserError(f'{path}: deblurring weights missing: {first_items([DEBLUR_PREFIX + k for k in missing])}')
        load_into(deblur, used, path)
        if getattr(self, 'net_g_ema', None) is not None:
            self.net_g_ema.DeblurNet.load_state_dict(used)
        logger = get_root_logger()
        logger.info(f'Loaded {len(used)} DeblurNet tensors from {path}: {", ".join(DEBLUR_PREFIX + k for k in used)}')
        logger.info(f'Dropped {len(dropped)} tensors not in DeblurNet: {", ".join(dropped) or "none"}')

    # -- training ---------------------------------------------------------------------------------

    def init_training_settings(self):
        train_opt = self.opt['train']
        self.cri_grad = build_loss(train_opt['grad_opt']).to(self.device) if train_opt.get('grad_opt') else None
        check_autocast(self.device.type, self.train_amp, 'train:amp')
        # disabled (every call a pass-through) unless fp16, whose small range needs the loss scaled
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.train_amp == torch.float16)
        super().init_training_settings()
        if getattr(self, 'net_g_ema', None) is not None:
            self.net_g_ema = to_memory_format(self.net_g_ema, self.speed)

    def freeze_deblur(self, net):
        """Keep the (pre-trained) deblurring module fixed: the paper's separate training (Table 5)."""
        deblur = getattr(net, 'DeblurNet', None)
        if deblur is None:
            raise UserError(f"train:freeze_deblur needs a network with a DeblurNet, got {self.opt['network_g']['type']}")
        deblur.requires_grad_(False)
        get_root_logger().info('DeblurNet is frozen (train:freeze_deblur).')

    def setup_optimizers(self):
        """One Adam, two parameter groups when ``lr_deblur`` is set: DeblurNet and the rest."""
        optim_opt = dict(self.opt['train']['optim_g'])
        optim_type = optim_opt.pop('type')
        lr_deblur = optim_opt.pop('lr_deblur', None)
        named = [(k, v) for k, v in self.get_bare_model(self.net_g).named_parameters() if v.requires_grad]
        if lr_deblur is None:
            groups = [{'params': [v for _, v in named]}]
        else:
            if not any(k.startswith(DEBLUR_PREFIX) for k, _ in named):
                raise UserError('train:optim_g:lr_deblur is set but the network has no trainable DeblurNet')
            groups = [{'params': [v for k, v in named if k.startswith(DEBLUR_PREFIX)], 'lr': lr_deblur},
                      {'params': [v for k, v in named if not k.startswith(DEBLUR_PREFIX)]}]
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def feed_data(self, data):
        memory_format = torch.channels_last if self.speed.channels_last else torch.preserve_format
        self.lq = data['lq'].to(self.device, memory_format=memory_format)
        if self.target_key in data:
            self.gt = data[self.target_key].to(self.device)

    def optimize_parameters(self, current_iter):
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

    def _update_is_finite(self, loss):
        """Loss and gradients finite, on every rank (all ranks must skip alike under DDP)."""
        grads = [p.grad for p in self.net_g.parameters() if p.grad is not None]
        finite = torch.isfinite(loss) & torch.stack([torch.isfinite(g).all() for g in grads]).all()
        if self.opt['dist']:
            finite = finite.to(self.device, torch.int32)
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite)

    def _skip_update(self, current_iter):
        """Drop a non-finite update; stop after ``train.nonfinite_patience`` of them in a row."""
        self.optimizer_g.zero_grad()
        self.nonfinite_in_a_row += 1
        losses = ', '.join(f'{k}={v:.4g}' for k, v in self.log_dict.items())
        scale = f', fp16 loss scale now {self.scaler.get_scale():g}' if self.scaler.is_enabled() else ''
        get_root_logger().warning(f'iter {current_iter}: non-finite loss or gradient ({losses}); update skipped '
                                  f'({self.nonfinite_in_a_row} in a row{scale})')
        if self.nonfinite_in_a_row >= self.opt['train'].get('nonfinite_patience', NONFINITE_PATIENCE):
            last = (f"{self.opt['path']['models']}/net_g_{self.last_saved_iter}.pth"
                    if self.last_saved_iter is not None else 'none saved yet')
            raise TrainingDiverged(f'training stopped at iter {current_iter} after {self.nonfinite_in_a_row} '
                                   f'non-finite updates in a row; last good checkpoint: {last} '
                                   '(lower the learning rate, then resume with --auto_resume)')

    def save(self, epoch, current_iter):
        """Save as SRModel does; in distributed runs first check every rank holds the same weights."""
        if self.opt['dist']:
            self.check_ranks_in_sync(current_iter)
        super().save(epoch, current_iter)
        self.last_saved_iter = 'latest' if current_iter == -1 else current_iter

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BaseModel.save_network, written atomically; a failure is raised, not ignored."""
        nets = net if isinstance(net, list) else [net]
        param_keys = param_key if isinstance(param_key, list) else [param_key]
        # contiguous: checkpoints look alike with and without speed:channels_last
        save_dict = {key: {k: v.cpu().contiguous() for k, v in self.get_bare_model(n).state_dict().items()}
                     for n, key in zip(nets, param_keys)}
        label = 'latest' if current_iter == -1 else current_iter
        atomic_torch_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BaseModel.save_training_state, written atomically after the network checkpoint."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        if self.scaler.is_enabled():
            state['scaler'] = self.scaler.state_dict()  # its loss scale, so a resumed fp16 run continues exactly
        atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        """BaseModel.resume_training, and the fp16 loss scale when both the state and this run have one."""
        super().resume_training(resume_state)
        if self.scaler.is_enabled() and 'scaler' in resume_state:
            self.scaler.load_state_dict(resume_state['scaler'])

    def check_ranks_in_sync(self, current_iter):
        """Compare a hash of this rank's parameters with every other rank's; raise if they differ."""
        digest = hashlib.sha256()
        for tensor in self.get_bare_model(self.net_g).state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        local = torch.tensor(list(digest.digest()[:8]), dtype=torch.int64, device=self.device)
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, local)
        hashes = [bytes(t.tolist()).hex() for t in gathered]
        if len(set(hashes)) != 1:
            raise RuntimeError(f'iter {current_iter}: ranks hold different weights (hashes {hashes})')
        get_root_logger().info(f'iter {current_iter}: weights identical on all {len(hashes)} ranks '
                               f'(sha256 prefix {hashes[0]})')

    # -- testing ----------------------------------------------------------------------------------

    def test(self):
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
