"""Check an option YAML before BasicSR runs it, so mistakes read as one line.

BasicSR itself would fail later with a bare ``FileNotFoundError``, a YAML
traceback or ``KeyError: "No object named ... found in 'arch' registry!"``.
"""

import os

import torch
import yaml
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from .errors import UserError
from .speed import parse_speed


def load_option_file(path):
    """Parse an option file; errors name the file (and line for bad YAML)."""
    if not os.path.isfile(path):
        raise UserError(f'option file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark else path
        problem = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise UserError(f'{where}: invalid YAML: {problem}') from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f'cannot read option file {path}: {err}') from None
    if not isinstance(opt, dict):
        raise UserError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt


def _require(opt, key, kind, where, path):
    if key not in opt or opt[key] is None:
        raise UserError(f'{path}: missing required option {where}{key}')
    if not isinstance(opt[key], kind) or isinstance(opt[key], bool):
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
    """Build the network on the meta device (no memory, no compute) so bad arguments fail now."""
    args = {k: v for k, v in network_opt.items() if k != 'type'}
    try:
        # not basicsr's build_network: its log line would set up BasicSR's logger too early
        with torch.device('meta'):
            ARCH_REGISTRY.get(network_opt['type'])(**args)
    except (TypeError, ValueError) as err:
        raise UserError(f'{where}: cannot build {network_opt["type"]}: {err}') from None


def check_options(path, is_train):
    """Validate the structure and registered names of option file ``path``."""
    opt = load_option_file(path)
    _require(opt, 'name', str, '', path)
    check_registered({'type': _require(opt, 'model_type', str, '', path)}, MODEL_REGISTRY, 'model', 'model_', path)
    _check_num_gpu(opt, path)
    _require(opt, 'path', dict, '', path)
    _require(opt, 'network_g', dict, '', path)
    for key, section in opt.items():
        if key.startswith('network_'):
            check_registered(section, ARCH_REGISTRY, 'network', f'{key}:', path)
            check_buildable(section, f'{path}: {key}')
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
        logger = _require(opt, 'logger', dict, '', path)
        for key in ('print_freq', 'save_checkpoint_freq'):
            _require(logger, key, (int, float), 'logger:', path)  # BasicSR writes !!float 5e3
        _require(train, 'total_iter', (int, float), 'train:', path)
    parse_speed(opt, f'{path}: ')
    return opt
