"""Check options before BasicSR runs them, so mistakes read as one line.

The options are an option file read as plain data (:mod:`cnlrn_base.option_file`) with
basicsr's ``--force_yml`` overrides applied, so an override is checked like the
file. BasicSR itself would fail later with a bare ``FileNotFoundError``, a YAML
traceback or ``KeyError: "No object named ... found in 'arch' registry!"``.
"""

import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from cnlrn_arch.options.vgg_weights import missing_vgg19_message, vgg19_weights
from cnlrn_arch.runtime.speed import parse_speed
from cnlrn_base.errors import UserError
from cnlrn_base.option_file import apply_overrides, load_option_file
from cnlrn_base.option_schema import check_schema
from cnlrn_base.project import SCALE


def _require(opt, key, kind, where, path):
    """``opt[key]``, which must be given; of ``kind`` unless that is None (the schema checks the value)."""
    if key not in opt or opt[key] is None:
        raise UserError(f'{path}: missing required option {where}{key}')
    if kind is not None and (not isinstance(opt[key], kind) or isinstance(opt[key], bool)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = ' or '.join(k.__name__ for k in kinds)
        raise UserError(f'{path}: option {where}{key} must be a {expected}, got {opt[key]!r}')
    return opt[key]


def check_registered(section, registry, kind, where, path):
    name = section.get('type') if isinstance(section, dict) else None
    if name is None:
        raise UserError(f'{path}: missing required option {where}type')
    if name not in registry:
        known = ', '.join(sorted(registry.keys()))
        raise UserError(f'{path}: {where}type: {kind} {name!r} is not registered; registered: {known}')


def _check_num_gpu(opt, path):
    num_gpu = opt.get('num_gpu')
    if num_gpu == 'auto':
        return
    if num_gpu is None or isinstance(num_gpu, bool) or not isinstance(num_gpu, int) or num_gpu < 0:
        raise UserError(f"{path}: option num_gpu must be 0 (CPU), a GPU count or 'auto', got {num_gpu!r}")
    if num_gpu > 0 and not torch.cuda.is_available():
        raise UserError(f'{path}: num_gpu is {num_gpu} but no CUDA GPU is available here; set num_gpu: 0 for the CPU')


def check_buildable(network_opt, where):
    """Build the network on the meta device (no memory, no compute) so bad arguments fail now; return it."""
    args = {k: v for k, v in network_opt.items() if k != 'type'}
    try:
        # not basicsr's build_network: its log line would set up BasicSR's logger too early
        with torch.device('meta'):
            return ARCH_REGISTRY.get(network_opt['type'])(**args)
    except (TypeError, ValueError) as err:
        raise UserError(f'{where}: cannot build {network_opt["type"]}: {err}') from None


def _check_deterministic_patch(opt, network, path):
    """With ``deterministic: true``, the LR training patch must need no padding.

    Networks that pad their input (``size_multiple``) pad by reflection, whose
    backward has no deterministic CUDA kernel: torch raises mid-training.
    """
    multiple = getattr(network, 'size_multiple', 1)
    scale = opt.get('scale', SCALE)
    lr_patch = opt['datasets']['train'].get('gt_size', 0) // scale
    if opt.get('deterministic') and lr_patch % multiple:
        raise UserError(
            f'{path}: deterministic: true needs the LR training patch (datasets:train:gt_size / scale = {lr_patch}) '
            f'to be a multiple of {multiple}, the padding of {type(network).__name__} is not deterministic on CUDA; '
            f'set gt_size to a multiple of {multiple * scale}'
        )


def _check_vgg19_weights(loss_opt, where):
    """A perceptual loss on VGG19 needs torchvision's weights on disk: basicsr's would download them mid-start."""
    if loss_opt['type'] == 'PerceptualLoss' and loss_opt.get('vgg_type', 'vgg19') == 'vgg19' and not vgg19_weights():
        raise UserError(f'{where}: {missing_vgg19_message()}')


def _check_scheduler(train, path):
    """Lists of a restart scheduler that basicsr pairs up, and periods that reach ``total_iter``.

    basicsr asserts the first; past the last period CosineAnnealingRestartLR has
    no learning rate and fails with a TypeError at that iteration.
    """
    scheduler = train.get('scheduler') or {}
    pairs = {'CosineAnnealingRestartLR': 'periods', 'MultiStepRestartLR': 'restarts'}
    listed = pairs.get(scheduler.get('type'))
    if listed is None:
        return
    if listed == 'periods':
        _require(scheduler, 'periods', None, 'train:scheduler:', path)
    values, weights = scheduler.get(listed, [0]), scheduler.get('restart_weights', [1])
    if len(values) != len(weights):
        raise UserError(
            f'{path}: train:scheduler:{listed} and train:scheduler:restart_weights must be as long, '
            f'got {len(values)} and {len(weights)}'
        )
    if listed == 'periods' and sum(values) < train['total_iter']:
        raise UserError(
            f'{path}: train:scheduler:periods end at iter {sum(values)}, before train:total_iter '
            f'{train["total_iter"]}: the learning rate past them is undefined'
        )


def check_options(path, is_train, overrides=()):
    """Validate option file ``path`` with basicsr's ``--force_yml`` ``overrides`` applied; return those options.

    The training state ``path:resume_state`` names is read (once) and checked by
    :func:`cnlrn_arch.training.resume.read_training_state`.
    """
    opt = apply_overrides(load_option_file(path), overrides, path)
    if overrides:
        path = f'{path} with --force_yml'
    check_schema(opt, path)
    _require(opt, 'name', str, '', path)
    check_registered({'type': _require(opt, 'model_type', str, '', path)}, MODEL_REGISTRY, 'model', 'model_', path)
    _check_num_gpu(opt, path)
    _require(opt, 'path', dict, '', path)
    _require(opt, 'network_g', dict, '', path)
    networks = {}
    for key, section in opt.items():
        if key.startswith('network_'):
            check_registered(section, ARCH_REGISTRY, 'network', f'{key}:', path)
            networks[key] = check_buildable(section, f'{path}: {key}')
    datasets = _require(opt, 'datasets', dict, '', path)
    for phase, dataset_opt in datasets.items():
        check_registered(dataset_opt, DATASET_REGISTRY, 'dataset', f'datasets:{phase}:', path)
    if is_train:
        if 'train' not in datasets:
            raise UserError(f'{path}: missing required option datasets:train')
        train = _require(opt, 'train', dict, '', path)
        for key, section in train.items():
            if key.endswith('_opt') and section is not None:
                check_registered(section, LOSS_REGISTRY, 'loss', f'train:{key}:', path)
                _check_vgg19_weights(section, f'{path}: train:{key}')
        logger = _require(opt, 'logger', dict, '', path)
        for key in ('print_freq', 'save_checkpoint_freq'):
            _require(logger, key, None, 'logger:', path)
        _require(train, 'total_iter', None, 'train:', path)
        _check_scheduler(train, path)
        _check_deterministic_patch(opt, networks['network_g'], path)
    parse_speed(opt, f'{path}: ')
    return opt
