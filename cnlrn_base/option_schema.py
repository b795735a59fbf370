"""Types and ranges of the numeric options that basicsr 1.4.2's pipelines and this project's models read.

basicsr takes them as they come: ``total_iter: -1`` ends training at once and
saves the untrained network, ``batch_size_per_gpu: [2]`` or ``lr: 1e-4`` (text
to YAML 1.1) fail deep inside torch with a traceback. :data:`SCHEMA` says what
each may hold; :func:`check_schema` turns a value outside that into one line.
Torch-free, so that the options stored in a weights file are checked before torch is imported.
"""

import math
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase

from cnlrn_base.errors import UserError


@dataclass(frozen=True)
class Number:
    """An int or float from ``low`` to ``high`` (an end is left out when ``*_open``).

    ``integer``: a whole number, 5000.0 included (basicsr writes ``!!float 5e3``);
    ``exact``: an int proper, where torch or slicing wants one; ``nullable``: ``~`` allowed.
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    exact: bool = False
    nullable: bool = False

    def accepts(self, value):
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, int if self.exact else (int, float)):
            return False
        # an int is finite, and math.isfinite cannot take one past float's range
        if (isinstance(value, float) and not math.isfinite(value)) or (self.integer and value != int(value)):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self, plural=False):
        noun = ('integer' if self.integer else 'number') + ('s' if plural else '')
        low, high = (str(int(v)) if float(v).is_integer() else repr(v) for v in (self.low, self.high))
        if self.high == math.inf:
            bounds = f' {">" if self.low_open else ">="} {low}'
        else:
            bounds = f' in {"(" if self.low_open else "["}{low}, {high}{")" if self.high_open else "]"}'
        text = noun + bounds
        if plural:
            return text
        return ('an ' if self.integer else 'a ') + text + (' or ~' if self.nullable else '')


@dataclass(frozen=True)
class ListOf:
    """A non-empty list of ``element``s; of exactly ``length`` when given."""

    element: Number
    length: int | None = None

    def accepts(self, value):
        return (
            isinstance(value, list)
            and len(value) > 0
            and (self.length is None or len(value) == self.length)
            and all(self.element.accepts(v) for v in value)
        )

    def describe(self):
        size = f'{self.length} ' if self.length else ''
        return f'a list of {size}{self.element.describe(plural=True)}'


@dataclass(frozen=True)
class Kind:
    """A value of one Python type: a mapping, text or a flag; ``~`` allowed when ``nullable``."""

    type: type
    noun: str
    nullable: bool = False

    def accepts(self, value):
        if value is None:
            return self.nullable
        return isinstance(value, self.type) and (self.type is bool or not isinstance(value, bool))

    def describe(self):
        return self.noun + (' or ~' if self.nullable else '')


@dataclass(frozen=True)
class FolderName:
    """Text that names one folder: basicsr makes ``experiments/<name>`` and ``results/<name>`` from ``name``."""

    def accepts(self, value):
        return isinstance(value, str) and value not in ('', '.', '..') and not set(value) & {'/', '\\', '\0'}

    def describe(self):
        return 'one folder name (no /, \\ or .., nothing outside experiments/ and results/)'


MAPPING, TEXT, FLAG = Kind(dict, 'a mapping'), Kind(str, 'text'), Kind(bool, 'true or false')
WHOLE = dict(integer=True)
INT = dict(integer=True, exact=True)
POSITIVE = dict(low=0, low_open=True)

# key path ('*' and '*_opt' match keys of that mapping) -> what its value must be; absent keys are not checked
# here (option_check requires those that must be there), ~ only where a row allows it
SCHEMA = {
    # first the types of the sections and of what names things, so a rule below never meets a wrong type
    'name': FolderName(),
    'model_type': TEXT,
    **dict.fromkeys(('datasets', 'datasets:*', 'network_*', 'path', 'train', 'val', 'logger', 'dist_params'), MAPPING),
    **dict.fromkeys(('train:*_opt', 'datasets:*:io_backend'), Kind(dict, 'a mapping', nullable=True)),
    **dict.fromkeys(('train:optim_g', 'train:scheduler', 'val:metrics', 'val:metrics:*'), MAPPING),
    **dict.fromkeys(('network_*:type', 'datasets:*:type', 'train:*_opt:type', 'train:optim_g:type'), TEXT),
    **dict.fromkeys(('train:scheduler:type', 'val:metrics:*:type', 'datasets:*:io_backend:type'), TEXT),
    **dict.fromkeys(('datasets:*:dataroot_*', 'datasets:*:meta_info_file', 'datasets:*:name'), TEXT),
    **dict.fromkeys(('path:pretrain_network_*', 'path:resume_state'), Kind(str, 'a path', nullable=True)),
    'path:param_key_*': Kind(str, 'text', nullable=True),
    'path:strict_load_*': FLAG,
    **dict.fromkeys(('val:save_img', 'val:self_ensemble', 'logger:use_tb_logger'), FLAG),
    'scale': Number(1, **INT),
    # a network's size, bounded before it is built (options in a weights file are not the user's own): 4x the
    # widest and 3x the deepest recipe here, while n_feats 4096 would take gigabytes and n_rcabs 10**6 hours
    **dict.fromkeys((f'network_*:{k}' for k in ('n_feats', 'num_feat', 'num_grow_ch')), Number(1, 256, **INT)),
    **dict.fromkeys((f'network_*:{k}' for k in ('n_colors', 'num_in_ch', 'num_out_ch')), Number(1, 4, **INT)),
    **dict.fromkeys(
        (
            f'network_*:{k}'
            for k in ('n_deblur_blocks', 'n_nlrgs_*', 'n_subgroups', 'n_rcabs', 'num_block', 'num_group')
        ),
        Number(1, 64, **INT),
    ),
    'network_*:nonlocal_psize': ListOf(Number(1, 64, **INT)),
    **dict.fromkeys(('network_*:scale', 'network_*:upscale'), Number(1, 8, **INT)),
    'network_*:input_size': Number(1, 1024, **INT),
    # numpy takes seeds < 2**32; basicsr seeds it with manual_seed + rank, a worker with more added: room left
    'manual_seed': Number(0, 2**31 - 1, nullable=True, **INT),
    'datasets:*:batch_size_per_gpu': Number(1, **INT),
    'datasets:*:num_worker_per_gpu': Number(0, **INT),
    'datasets:*:dataset_enlarge_ratio': Number(1),
    'datasets:*:gt_size': Number(1, **INT),
    'datasets:*:num_prefetch_queue': Number(1, **INT),
    'train:total_iter': Number(1, **WHOLE),
    'train:warmup_iter': Number(-1, **WHOLE),  # -1: no warm-up
    'train:ema_decay': Number(0, 1, high_open=True),
    'train:nonfinite_patience': Number(1, **WHOLE),
    'train:optim_g:lr': Number(**POSITIVE),
    'train:optim_g:lr_deblur': Number(nullable=True, **POSITIVE),
    'train:optim_g:weight_decay': Number(0),
    'train:optim_g:eps': Number(**POSITIVE),
    'train:optim_g:betas': ListOf(Number(0, 1, high_open=True), length=2),
    'train:scheduler:periods': ListOf(Number(1, **WHOLE)),
    'train:scheduler:restart_weights': ListOf(Number(0)),
    'train:scheduler:eta_min': Number(0),
    'train:scheduler:milestones': ListOf(Number(1, **WHOLE)),
    'train:scheduler:restarts': ListOf(Number(0, **WHOLE)),
    'train:scheduler:gamma': Number(**POSITIVE),
    'train:*_opt:loss_weight': Number(0),
    'logger:print_freq': Number(1, **WHOLE),
    'logger:save_checkpoint_freq': Number(1, **WHOLE),
    'val:val_freq': Number(1, **WHOLE),
    'val:tb_images': Number(0, **INT),  # validation images sent to TensorBoard; 0: none
    'val:metrics:*:crop_border': Number(0, **INT),
    'dist_params:port': Number(1, 65535, **INT),
    'dist_params:timeout_minutes': Number(**POSITIVE),
}


def _options(section, patterns, path=()):
    """(key path, value) of every option under ``section`` whose keys match ``patterns`` one by one."""
    if not patterns:
        yield ':'.join(path), section
    elif isinstance(section, dict):
        for key, value in section.items():
            if fnmatchcase(str(key), patterns[0]):
                yield from _options(value, patterns[1:], (*path, str(key)))


def _shown(value):
    """``value`` as the message shows it; for text like 1e-4, why it is text and how to write the number."""
    if isinstance(value, str) and 'e' in value.lower():
        try:
            float(value)
        except ValueError:
            return repr(value)
        mantissa, exponent = value.lower().split('e', 1)
        dotted = f'{mantissa}{"" if "." in mantissa else ".0"}e{exponent}'
        return f'{value!r} (text: YAML 1.1 reads a number without a dot as text; write {dotted} or !!float {value})'
    try:
        return repr(value)
    except ValueError:  # an integer (YAML's 0x..., a pickle's) of more digits than repr writes
        return f'an integer of more than {sys.get_int_max_str_digits()} digits'


def check_schema(opt, source):
    """Raise a UserError naming ``source``, the key path and the allowed values for the first value outside SCHEMA."""
    for pattern, rule in SCHEMA.items():
        for key_path, value in _options(opt, pattern.split(':')):
            if not rule.accepts(value):
                raise UserError(f'{source}: {key_path} must be {rule.describe()}, got {_shown(value)}')
