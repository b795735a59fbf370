"""Defaults and names that ``cnlrn bench``, ``bench-quality``, ``gpu-check`` and ``make-demo-data`` show, torch-free.

The commands show them in ``--help`` before the library (which imports torch) is loaded; the library takes them
from here too, so both say the same. ``cnlrn infer`` and ``cnlrn serve`` have theirs in :mod:`.inference_defaults`.
"""

# cnlrn bench (cnlrn_tools.speed): the side of the square matmul among the GEMMs that measure the peak
MATMUL_SIZE = 2048
# a case's forwards are cut, down to one, where the FLOP floor says they would take longer than this
CASE_BUDGET_S = 150

# cnlrn bench-quality (cnlrn_tools.quality): the variants' names, in the order of their table
QUALITY_MAIN = ('rcan', 'rrdbnet', 'srn_rcan', 'srn_rrdbnet', 'cnlrn')
QUALITY_GAN = ('esrgan', 'cnlrn_gan')
QUALITY_ABLATIONS = ('no_deblur', 'frozen_deblur', 'no_nonlocal', 'post_upsampling', 'no_gradient_loss')
QUALITY_VARIANTS = QUALITY_MAIN + QUALITY_GAN + QUALITY_ABLATIONS
# the default run: the paper's Table 1 at this scale, and the GAN-trained generators when VGG19's weights are there
QUALITY_DEFAULT_VARIANTS = QUALITY_MAIN + QUALITY_GAN
# per method and seed: the main comparison at 3 seeds takes about 40 min on a 2-core CPU, with the GAN fine-tunes
# (VGG19's weights present) about 57 min (20 s of evaluations and set-up a run, measured; see the README)
QUALITY_BUDGET_S = 135
QUALITY_SEEDS = 3

# cnlrn gpu-check (cnlrn_tools.gpu_check): seconds within which every step must be done
GPU_CHECK_DEADLINE_S = 480

# cnlrn make-demo-data (cnlrn_arch.data_prep.demo_data): skimage.data names; grayscale ones become 3 equal channels
DEMO_TRAIN_PHOTOS = (
    'rocket',
    'motorcycle',
    'hubble_deep_field',
    'retina',
    'immunohistochemistry',
    'colorwheel',
    'camera',
    'brick',
    'grass',
    'gravel',
    'coins',
    'moon',
    'page',
)
DEMO_SEED = 0
DEMO_CROPS_PER_PHOTO = 24
