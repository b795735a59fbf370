"""The variants the quality benchmark compares, each a REDS option file of this project scaled down.

A variant keeps everything its option file decides (network type and
switches, losses, a frozen or separately tuned deblurring module, whether it
starts from a pre-trained deblurring module or from another variant's trained
generator) and takes its size from the demo (``options/demo/joint.yml``), so
that the comparison is about the recipes, not about their sizes:

- CNLRN and its ablations take the demo's CNLRN size;
- RCAN, RRDBNet and the SR networks of the cascades get as many blocks as
  bring their parameter count closest to the demo CNLRN's;
- the GAN fine-tunes keep the network of the variant they start from;
- with ``full_size`` every network is as its option file has it.

Learning rates, schedules and losses are each recipe's own (:mod:`.recipes`).
"""

import copy
from dataclasses import dataclass, field

from basicsr.utils.registry import ARCH_REGISTRY

from cnlrn_arch.options.check import load_option_file
from cnlrn_base.project import DEMO_JOINT, option_path
from cnlrn_tools.quality.recipes import BASICSR_RECIPES, Recipe

# share of the budget that pre-trains the deblurring module in two-stage recipes
# (the demo: 300 of 1,300 iterations)
PRETRAIN_SHARE = 0.25
MAX_BLOCKS = 64  # search limit of the parameter matching


# the ESRGAN-style fine-tunes take this share of a budget, after their generator's own recipe took the rest
# (BasicSR: 1M iterations of L1 for RRDBNet, then 400k of ESRGAN)
GAN_SHARE = 0.3


@dataclass(frozen=True)
class Variant:
    """One row of the benchmark.

    name: its ``--variants`` name; label: its row in the table; option: the
    REDS option file (under ``options/``) it scales down; group: what the
    paper's ordering counts it as (baseline, cascade, ours, gan or ablation);
    paper: published REDS Val300 (PSNR, SSIM) or None; scan: key path in
    ``network_g`` of the block count matched to the reference parameter
    count, () for CNLRN networks (the demo's size); fixed: sizes set before
    the scan; recipe: a published recipe replacing the option file's rate and
    schedule, None to keep the option file's; init_from: the variant whose
    trained generator this one fine-tunes (ESRGAN-style recipes).
    """

    name: str
    label: str
    option: str
    group: str
    paper: tuple = None
    scan: tuple = ()
    fixed: dict = field(default_factory=dict)
    recipe: Recipe = None
    init_from: str = None


VARIANTS = (
    Variant(
        'rcan',
        'RCAN',
        'baselines/rcan.yml',
        'baseline',
        paper=(27.338, 0.7661),
        scan=('num_block',),
        fixed=dict(num_group=5),
        recipe=BASICSR_RECIPES['RCAN'],
    ),
    Variant(
        'rrdbnet',
        'RRDBNet',
        'baselines/rrdbnet.yml',
        'baseline',
        paper=(27.224, 0.7647),
        scan=('num_block',),
        recipe=BASICSR_RECIPES['RRDBNet'],
    ),
    # the demo CNLRN's deblurring module and an SR network of its SR module's width
    Variant(
        'srn_rcan',
        'SRN+RCAN',
        'baselines/srn_rcan.yml',
        'cascade',
        paper=(27.610, 0.7745),
        scan=('sr_opt', 'num_block'),
        fixed=dict(sr_opt=dict(num_feat=32, num_group=2)),
    ),
    Variant(
        'srn_rrdbnet',
        'SRN+RRDBNet',
        'baselines/srn_rrdbnet.yml',
        'cascade',
        paper=(27.395, 0.7667),
        scan=('sr_opt', 'num_block'),
        fixed=dict(sr_opt=dict(num_feat=32, num_grow_ch=16)),
    ),
    Variant('cnlrn', 'CNLRN', 'joint.yml', 'ours', paper=(27.770, 0.7784)),
    Variant('esrgan', 'ESRGAN (RRDBNet + GAN)', 'baselines/esrgan.yml', 'gan', init_from='rrdbnet'),
    Variant('cnlrn_gan', 'CNLRN-GAN', 'baselines/cnlrn_gan.yml', 'gan', init_from='cnlrn'),
    Variant(
        'no_deblur', 'CNLRN without deblurring module', 'ablations/no_deblur.yml', 'ablation', paper=(27.532, 0.7712)
    ),
    # Table 5's "SRN+NLRN, trained separately": CNLRN's modules, the deblurring one fixed after pre-training
    Variant(
        'frozen_deblur',
        'CNLRN, deblurring module frozen',
        'ablations/frozen_deblur.yml',
        'ablation',
        paper=(27.052, 0.7549),
    ),
    Variant(
        'no_nonlocal', 'CNLRN without non-local blocks', 'ablations/no_nonlocal.yml', 'ablation', paper=(27.541, 0.7726)
    ),
    Variant(
        'post_upsampling', 'CNLRN, post-upsampling', 'ablations/post_upsampling.yml', 'ablation', paper=(27.588, 0.7736)
    ),
    Variant(
        'no_gradient_loss',
        'CNLRN without gradient loss',
        'ablations/no_gradient_loss.yml',
        'ablation',
        paper=(27.660, 0.7762),
    ),
)
BY_NAME = {v.name: v for v in VARIANTS}  # in the order of cnlrn_base.command_defaults.QUALITY_VARIANTS
# published REDS Val300 numbers of bicubic upsampling of the blurry LR
BICUBIC_PAPER = (23.848, 0.6481)


def load_option(name):
    """An option file of this repository, by its path under ``options/``."""
    return load_option_file(option_path(name))


def count_parameters(network):
    """Parameters of the network an option file's ``network_g`` describes."""
    args = dict(network)
    return sum(p.numel() for p in ARCH_REGISTRY.get(args.pop('type'))(**args).parameters())


def _merge(base, changes):
    for key, value in changes.items():
        if isinstance(value, dict):
            _merge(base.setdefault(key, {}), value)
        else:
            base[key] = value
    return base


def _set(network, key_path, value):
    for key in key_path[:-1]:
        network = network[key]
    network[key_path[-1]] = value


def match_parameters(network, key_path, target):
    """``network`` with the block count at ``key_path`` whose parameter count is closest to ``target``.

    Parameter counts grow with the block count, so the search stops at the
    first count past the target.
    """
    best = None
    for blocks in range(1, MAX_BLOCKS + 1):
        candidate = copy.deepcopy(network)
        _set(candidate, key_path, blocks)
        params = count_parameters(candidate)
        if best is None or abs(params - target) < abs(best[1] - target):
            best = candidate, params
        if params >= target:
            break
    return best[0]


def reference_network():
    """The demo's CNLRN (``options/demo/joint.yml``): the size every variant is matched to."""
    return load_option(DEMO_JOINT)['network_g']


def scaled_network(variant, full_size=False):
    """The variant's ``network_g``, scaled down as the module docstring says (as it is with ``full_size``).

    A fine-tune (``init_from``) takes the network of the variant it starts from.
    """
    if variant.init_from:
        return scaled_network(BY_NAME[variant.init_from], full_size)
    network = load_option(variant.option)['network_g']
    if full_size:
        return network
    reference = reference_network()
    if not variant.scan:
        return _merge(network, {k: v for k, v in reference.items() if k != 'type'})
    if network['type'] == 'DeblurSRCascade':
        network.update(n_feats=reference['n_feats'], n_deblur_blocks=reference['n_deblur_blocks'])
    return match_parameters(_merge(network, copy.deepcopy(variant.fixed)), variant.scan, count_parameters(reference))


def needs_pretraining(variant):
    """Whether the variant's recipe starts from a pre-trained deblurring module (a two-stage recipe)."""
    return bool(load_option(variant.option)['path'].get('pretrain_network_deblur'))


def stage_count(variant):
    """How many stages the variant trains in, one after another: pre-training, training, a GAN fine-tune."""
    if variant.init_from:
        return stage_count(BY_NAME[variant.init_from]) + 1
    return 1 + needs_pretraining(variant)
