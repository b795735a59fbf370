"""Two-stage training of CNLRN on :class:`RobustSRModel`.

``train: {stage: pretrain}``: network ``CNLRNPreDeblur``, input ``lq``,
target ``gt_lr`` (the sharp LR frame), L1.
``train: {stage: joint}``: network ``CNLRN``, target ``gt``, L1 + Sobel
gradient loss; ``path: {pretrain_network_deblur: ...}`` initialises the
deblurring module from a pre-training checkpoint; ``optim_g: {lr_deblur: ...}``
gives that module its own learning rate.
"""

from typing import Any

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

from cnlrn_arch.models.robust_sr_model import RobustSRModel
from cnlrn_arch.weights.files import first_items, load_into, read_state_dict
from cnlrn_base.errors import UserError

STAGES = ('pretrain', 'joint')
DEBLUR_PREFIX = 'DeblurNet.'


@MODEL_REGISTRY.register()
class CNLRNModel(RobustSRModel):
    """RobustSRModel with CNLRN's two training stages and its deblurring module's options.

    Options beyond RobustSRModel's:
        train.stage: 'pretrain' or 'joint'; without it, 'pretrain' for
            ``CNLRNPreDeblur`` and 'joint' otherwise.
        train.freeze_deblur: true keeps ``DeblurNet`` fixed (separate training).
        train.optim_g.lr_deblur: learning rate of ``DeblurNet`` in joint training
            (default: the same as ``lr``).
        path.pretrain_network_deblur / path.param_key_deblur: pre-training
            checkpoint loaded into ``DeblurNet`` only (image head dropped).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        """Check the stage, build the model, then load the pre-trained ``DeblurNet`` when asked.

        Args:
            opt (dict[str, Any]): the parsed options (see the class docstring and RobustSRModel's).
        """
        self.stage = self._stage(opt)
        # the pre-training network outputs the sharp LR image
        self.target_key = 'gt_lr' if self.stage == 'pretrain' else 'gt'
        super().__init__(opt)
        path_opt = self.opt['path']
        deblur_path = path_opt.get('pretrain_network_deblur')
        if deblur_path is None:
            return
        if path_opt.get('resume_state'):
            # the resumed checkpoint already holds the jointly trained DeblurNet
            get_root_logger().info(f'Resuming: path:pretrain_network_deblur ({deblur_path}) is not loaded.')
        elif path_opt.get('pretrain_network_g'):
            raise UserError(
                'path:pretrain_network_g and path:pretrain_network_deblur are both set; the second '
                'would overwrite the deblurring weights of the first: set one to ~'
            )
        else:
            self.load_deblur_network(deblur_path, path_opt.get('param_key_deblur', 'params'))

    @staticmethod
    def _stage(opt: dict[str, Any]) -> str:
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

    def prepare_network(self, net: nn.Module) -> None:
        """Freeze ``DeblurNet`` when training with ``train.freeze_deblur``.

        Args:
            net (nn.Module): the bare network, already on the device.
        """
        if self.is_train and self.opt['train'].get('freeze_deblur'):
            self.freeze_deblur(net)

    def load_deblur_network(self, path: str, param_key: str) -> None:
        """Load the ``DeblurNet`` weights of a pre-training checkpoint; drop the rest.

        Args:
            path (str): a checkpoint of ``CNLRNPreDeblur`` (or of any network with a ``DeblurNet``).
            param_key (str): the entry of the checkpoint holding the state dict.
        """
        deblur = getattr(self.get_bare_model(self.net_g), 'DeblurNet', None)
        if deblur is None:
            raise UserError(
                f'path:pretrain_network_deblur needs a network with a DeblurNet module, '
                f'got {self.opt["network_g"]["type"]}'
            )
        loaded = read_state_dict(path, param_key)
        wanted = deblur.state_dict()
        state = {k[len(DEBLUR_PREFIX) :]: v for k, v in loaded.items() if k.startswith(DEBLUR_PREFIX)}
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

    def freeze_deblur(self, net: nn.Module) -> None:
        """Keep the (pre-trained) deblurring module fixed: the paper's separate training (Table 5).

        Args:
            net (nn.Module): the bare network.
        """
        deblur = getattr(net, 'DeblurNet', None)
        if deblur is None:
            raise UserError(
                f'train:freeze_deblur needs a network with a DeblurNet, got {self.opt["network_g"]["type"]}'
            )
        deblur.requires_grad_(False)
        get_root_logger().info('DeblurNet is frozen (train:freeze_deblur).')

    def param_groups(self, named: list[tuple[str, nn.Parameter]], optim_opt: dict[str, Any]) -> list[dict[str, Any]]:
        """Two parameter groups when ``lr_deblur`` is set: DeblurNet and the rest; else one.

        Args:
            named (list[tuple[str, nn.Parameter]]): the trainable parameters with their state dict keys.
            optim_opt (dict[str, Any]): ``train.optim_g`` without its type; ``lr_deblur`` is taken out.

        Returns:
            list[dict[str, Any]]: torch.optim parameter groups, DeblurNet's first.
        """
        lr_deblur = optim_opt.pop('lr_deblur', None)
        if lr_deblur is None:
            return super().param_groups(named, optim_opt)
        if not any(k.startswith(DEBLUR_PREFIX) for k, _ in named):
            raise UserError('train:optim_g:lr_deblur is set but the network has no trainable DeblurNet')
        return [
            {'params': [v for k, v in named if k.startswith(DEBLUR_PREFIX)], 'lr': lr_deblur},
            {'params': [v for k, v in named if not k.startswith(DEBLUR_PREFIX)]},
        ]
