"""``cnlrn bench-quality``: the statistics, the recipes, the parameter matching, real runs on tiny demo data and
on a tiny REDS in the official layout, the errors."""

import itertools
import json
import math
import time

import cv2
import numpy as np
import pytest
import torch

from cnlrn_arch.data_prep.tiny_reds import smooth_image
from cnlrn_base.errors import UserError
from cnlrn_base.image_formats import bicubic_resize_uint8
from cnlrn_cli.main import main
from cnlrn_tools.quality import quality_bench as quality_run
from cnlrn_tools.quality import quality_report as report
from cnlrn_tools.quality import train_variant as train
from cnlrn_tools.quality.quality_bench import held_out_images, make_setup, spread_pick
from cnlrn_tools.quality.recipes import BASICSR_OPTIONS, lr_at, schedule_text, training_recipe
from cnlrn_tools.quality.stats import combined_se, exact, ordering_sentences, resolved, summary
from cnlrn_tools.quality.train_variant import Budget, Setup, training_batches
from cnlrn_tools.quality.variants import (
    BY_NAME,
    VARIANTS,
    count_parameters,
    match_parameters,
    reference_network,
    scaled_network,
    stage_count,
)
from tests.helpers import make_tiny_reds, run_command, write_image

# -- statistics ---------------------------------------------------------------------------------------


def method(label, mean, std, n=3, paper=None):
    return dict(label=label, mean=mean, std=std, n=n, paper=paper)


def test_summary_is_mean_and_sample_standard_deviation():
    assert summary([1.0, 2.0, 4.0]) == dict(mean=7 / 3, std=pytest.approx(math.sqrt(7 / 3)), n=3)
    assert summary([1.0, 3.0]) == dict(mean=2.0, std=pytest.approx(math.sqrt(2)), n=2)  # two seeds: a spread
    assert summary([5.0]) == dict(mean=5.0, std=None, n=1)  # one seed: no spread measured


def test_a_difference_counts_beyond_twice_the_combined_standard_error():
    a, b = method('a', 0.0, 3.0, n=9), method('b', 0.0, 4.0, n=4)
    se = combined_se(a, b)
    assert se == pytest.approx(math.sqrt(9 / 9 + 16 / 4))
    assert resolved(dict(a, mean=2 * se * 1.01), b) == 1
    assert resolved(dict(a, mean=-2 * se * 1.01), b) == -1
    assert resolved(dict(a, mean=2 * se * 0.99), b) == 0
    assert resolved(dict(a, mean=100.0, std=None, n=1), b) == 0  # one seed resolves nothing
    # bicubic is exact: the other method's standard error alone decides
    assert combined_se(exact(23.0), b) == pytest.approx(4 / 2)


def test_ordering_sentences_say_what_the_data_support_contradict_and_cannot_resolve():
    methods = [
        method('bicubic', 23.0, 0.0, n=1, paper=(23.8, 0.6)),
        method('RCAN', 24.0, 0.1, paper=(27.3, 0.76)),
        method('CNLRN', 24.05, 0.1, paper=(27.7, 0.77)),
        method('SRN+RCAN', 23.5, 0.1, paper=(27.6, 0.77)),
        method('ESRGAN', 22.0, 0.1),  # no published number: in no ordering
    ]
    supported, contradicted, unresolved, count = ordering_sentences(methods)
    assert supported.startswith("The data support the paper's ordering for ")
    for pair in ('CNLRN above bicubic', 'SRN+RCAN above bicubic', 'RCAN above bicubic'):
        assert pair in supported
    assert contradicted == (
        'The data contradict the paper for RCAN above SRN+RCAN (+0.50 dB; 2 x combined SE 0.16 dB), '
        'where the paper has SRN+RCAN above.'
    )
    assert unresolved == (
        'The data cannot order CNLRN and RCAN (+0.05 dB): the difference is within 2 combined standard errors.'
    )
    assert count == (
        "Of the paper's 6 pairwise orderings among these methods, 4 held, 1 reversed and 1 could not be "
        'resolved at this budget.'
    )
    assert 'ESRGAN' not in ' '.join([supported, contradicted, unresolved])


def test_one_seed_leaves_every_ordering_unresolved():
    sentences = ordering_sentences(
        [method('a', 25.0, None, n=1, paper=(2, 0)), method('b', 24.0, None, n=1, paper=(1, 0))]
    )
    assert sentences[0] == 'With one seed there is no spread to judge by, so the data cannot order a and b (+1.00 dB).'


# -- recipes, variants, budgets -------------------------------------------------------------------------


def test_recipes_table():
    """BasicSR's own recipes for its networks, the release's for CNLRN and the cascades, ESRGAN's for the GANs."""
    rcan = training_recipe('baselines/rcan.yml', BY_NAME['rcan'].recipe)
    assert (rcan['lr'], rcan['total_iter'], rcan['loss']) == (1e-4, 300000, '1 x L1Loss')
    assert rcan['scheduler'] == dict(type='MultiStepLR', milestones=[200000], gamma=0.5)
    assert rcan['source'] == BASICSR_OPTIONS + 'RCAN/train_RCAN_x2.yml'
    rrdbnet = training_recipe('baselines/rrdbnet.yml', BY_NAME['rrdbnet'].recipe)
    assert (rrdbnet['lr'], rrdbnet['scheduler']['restart_weights']) == (2e-4, [1, 1, 1, 1])
    assert rrdbnet['source'] == BASICSR_OPTIONS + 'ESRGAN/train_RRDBNet_PSNR_x4.yml'
    cnlrn = training_recipe('joint.yml')
    assert (cnlrn['lr'], cnlrn['lr_deblur'], cnlrn['loss']) == (2e-4, 1e-5, '1 x L1Loss + 0.1 x GradientLoss')
    assert cnlrn['scheduler']['restart_weights'] == [1, 0.5, 0.5, 0.5] and 'release' in cnlrn['source']
    esrgan = training_recipe('baselines/esrgan.yml')
    assert (esrgan['lr'], esrgan['lr_d']) == (1e-4, 1e-4)
    assert esrgan['loss'] == '0.01 x L1Loss + 1 x PerceptualLoss + 0.005 x vanilla GAN'
    assert esrgan['source'].endswith(BASICSR_OPTIONS + 'ESRGAN/train_ESRGAN_x4.yml')
    assert [v.name for v in VARIANTS if v.recipe] == ['rcan', 'rrdbnet']
    assert schedule_text(rcan['scheduler'], rcan['total_iter']) == 'x0.5 at 67% of the budget'
    assert schedule_text(cnlrn['scheduler'], cnlrn['total_iter']) == (
        '4 cosine cycles (peaks 1, 0.5, 0.5, 0.5) down to 1e-07'
    )


def test_schedules_are_stretched_over_the_budget():
    multistep = dict(type='MultiStepLR', milestones=[200, 300], gamma=0.5)
    assert [lr_at(1.0, multistep, 400, p) for p in (0, 0.49, 0.5, 0.75, 1.0)] == [1, 1, 0.5, 0.25, 0.25]
    cosine = dict(type='CosineAnnealingRestartLR', periods=[50, 50], restart_weights=[1, 0.5], eta_min=0.0)
    assert lr_at(1.0, cosine, 100, 0.0) == 1.0
    assert lr_at(1.0, cosine, 100, 0.25) == pytest.approx(0.5)
    assert lr_at(1.0, cosine, 100, 0.5) == pytest.approx(0.5)  # the restart, at half weight
    assert lr_at(1.0, cosine, 100, 1.0) == pytest.approx(0.0)


def test_budget_split_and_progress():
    assert Budget('s', 100).split(0.25) == (Budget('s', 25), Budget('s', 75))
    assert Budget('iters', 2).split(0.25) == (Budget('iters', 1), Budget('iters', 1))  # an iteration each
    assert Budget('s', 10).progress(iters=3, seconds=5) == 0.5
    assert Budget('iters', 10).progress(iters=3, seconds=500) == 0.3


def test_stage_counts():
    stages = {name: stage_count(BY_NAME[name]) for name in ('rcan', 'no_deblur', 'cnlrn', 'esrgan', 'cnlrn_gan')}
    assert stages == dict(rcan=1, no_deblur=1, cnlrn=2, esrgan=2, cnlrn_gan=3)


class StepModel:
    """What train_stage drives: a model whose every update takes ``step_s`` seconds."""

    optimizers = ()

    def __init__(self, step_s):
        self.step_s = step_s

    def feed_data(self, batch):
        pass

    def optimize_parameters(self, current_iter):
        time.sleep(self.step_s)


@pytest.mark.parametrize(
    'budget, step_s, evaluations, iters',
    # one long step crosses every share, and runs past the budget's end by more than tqdm keeps its total for
    [(Budget('iters', 4), 0, 3, 4), (Budget('s', 0.05), 0.6, 1, 1)],
)
def test_a_stage_evaluates_once_per_share_crossed(budget, step_s, evaluations, iters, monkeypatch):
    calls = []
    monkeypatch.setattr(train, 'evaluate', lambda *args: calls.append(args) or (20.0, 0.5, 0.01))
    setup = Setup('', (None, None), torch.device('cpu'), 1, 4)
    with train.progress_bar(budget, 'stage') as bar:  # a step past the budget's end must not break it
        stage = train.train_stage(StepModel(step_s), itertools.repeat({}), budget, None, setup, bar, (0.5, 0.75, 1.0))
    assert len(calls) == evaluations and stage['iters'] == iters
    assert [p['share'] for p in stage['curve']] == [0.5, 0.75, 1.0]
    assert stage['seconds'] >= step_s * iters


def test_every_paper_number_beside_its_method():
    published = {v.name: v.paper for v in VARIANTS}
    assert published['cnlrn'] == (27.770, 0.7784) and published['srn_rrdbnet'] == (27.395, 0.7667)
    assert published['frozen_deblur'] == (27.052, 0.7549)  # Table 5, modules trained separately
    assert [name for name, paper in published.items() if paper is None] == ['esrgan', 'cnlrn_gan']


def test_scaled_variants_match_the_demo_cnlrn():
    target = count_parameters(reference_network())
    for variant in VARIANTS:
        params = count_parameters(scaled_network(variant))
        if variant.name == 'no_deblur':  # the ablation removes most of the parameters by design
            assert params < target / 5
        else:
            assert abs(params - target) / target < 0.05, (variant.name, params, target)
    assert scaled_network(BY_NAME['esrgan']) == scaled_network(BY_NAME['rrdbnet'])
    assert scaled_network(BY_NAME['rcan'], full_size=True)['num_block'] == 20


def test_match_parameters_picks_the_closest_block_count():
    rcan = dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=1, upscale=4)
    counts = {b: count_parameters(dict(rcan, num_block=b)) for b in (3, 4, 5)}
    just_over_4 = counts[4] + (counts[5] - counts[4]) // 3
    assert match_parameters(rcan, ('num_block',), just_over_4)['num_block'] == 4
    assert match_parameters(rcan, ('num_block',), counts[4] - 1)['num_block'] == 4
    assert 'num_block' not in rcan  # the given network is left as it was


def test_fewer_training_images_than_a_batch_is_one_line(tmp_path):
    data = str(tmp_path / 'data')
    make_tiny_reds(data)  # 6 training frames
    with pytest.raises(UserError, match=f'^{data} has 6 training images, fewer than the batch of 8$'):
        next(training_batches(Setup(data, None, torch.device('cpu'), 8, 32), seed=0))


def test_the_sweep_keeps_the_rate_with_the_best_psnr(monkeypatch):
    psnr = {0.5: 21.0, 1.0: 23.0, 2.0: 22.0}
    monkeypatch.setattr(
        quality_run, 'run_variant', lambda variant, budget, setup, seed, factor: dict(psnr=psnr[factor])
    )
    factor, tried = quality_run.sweep_rates(BY_NAME['rcan'], Budget('iters', 2), None, 0)
    assert factor == 1.0 and tried == [dict(factor=f, psnr=p) for f, p in psnr.items()]


def test_full_size_takes_the_release_batch_and_patch():
    demo, full = (make_setup('d', None, torch.device('cpu'), None, full_size) for full_size in (False, True))
    assert (demo.batch, demo.gt_size, full.batch, full.gt_size) == (8, 64, 32, 256) and full.full_size


def test_spread_pick():
    names = [f'{i:03d}' for i in range(10)]
    assert spread_pick(names, 3) == ['000', '004', '009'] and spread_pick(names, None) == names
    assert spread_pick(names, 20) == names


# -- the command ----------------------------------------------------------------------------------------


def test_missing_data_is_one_line(tmp_path, capsys):
    assert main(['bench-quality', '--data', str(tmp_path / 'nowhere')]) == 2
    data = tmp_path / 'nowhere'
    assert capsys.readouterr().err.strip().splitlines() == [
        f'cnlrn bench-quality: error: no demo data or prepared REDS in {data} (missing train_sharp.lmdb): '
        f'run `cnlrn make-demo-data --out {data}` or `cnlrn prepare-reds --root {data}` first'
    ]


def test_report_only_refuses_an_older_format_in_one_line(tmp_path, capsys):
    (tmp_path / 'quality.json').write_text(json.dumps(dict(rows=[])))  # format 1 had no 'format'
    assert main(['bench-quality', '--out', str(tmp_path), '--report-only']) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f'cnlrn bench-quality: error: --report-only: {tmp_path}/quality.json was written by an older cnlrn '
        f'bench-quality (format 1, this one reads {report.FORMAT}): run without --report-only'
    ]


def test_the_sweep_images_are_kept_apart_from_the_scoring_ones(tmp_path):
    names = [f'000_{i:08d}' for i in range(7)]
    for folder, side in (('sharp', 16), ('blur_bicubic_X4', 4)):
        for name in names:
            write_image(tmp_path / folder / f'{name}.png', np.zeros((side, side, 3), np.uint8))
    (scoring, *images), sweep = held_out_images(str(tmp_path), None, lr_sweep=True)
    assert sweep[0] == [names[2], names[5]] and scoring == [n for n in names if n not in sweep[0]]
    assert [len(i) for i in images] == [5, 5, 5] and images[0][0].shape == (16, 16, 3)
    assert held_out_images(str(tmp_path), 3, lr_sweep=False)[0][0] == [names[0], names[3], names[6]]


@pytest.mark.parametrize(
    'args',
    [['--iters', '1'], ['--budget-s', '0'], ['--budget-s', '5', '--iters', '5'], ['--seeds', '0'], ['--variants', 'x']],
)
def test_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['bench-quality', *args])
    assert exit_info.value.code == 2 and 'bench-quality: error:' in capsys.readouterr().err


def no_vgg19(tmp_path):
    """Environment of a machine without VGG19's weights (the working directory is ``tmp_path``)."""
    return dict(TORCH_HOME=str(tmp_path / 'torch'))


@pytest.mark.slow
def test_tiny_demo_run_writes_table_chart_and_numbers(tmp_path):
    assert (
        run_command('cnlrn', 'make-demo-data', '--out', 'data', '--crops-per-photo', '1', cwd=tmp_path).returncode == 0
    )
    args = ['--iters', '2', '--seeds', '2', '--val-frames', '2', '--data', 'data', '--out', 'out']
    args += ['--variants', 'cnlrn', 'no_deblur', 'esrgan']
    result = run_command('cnlrn', 'bench-quality', *args, cwd=tmp_path, **no_vgg19(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '[2/2] CNLRN without deblurring module:' in result.stdout
    assert "ESRGAN and CNLRN-GAN left out: the perceptual loss needs torchvision's VGG19 weights" in result.stdout
    out = tmp_path / 'out'
    numbers = json.loads((out / 'quality.json').read_text())
    assert numbers['format'] == report.FORMAT and numbers['settings']['budget'] == dict(unit='iters', amount=2)
    assert [row['name'] for row in numbers['rows']] == ['cnlrn', 'no_deblur']
    assert numbers['val']['count'] == 2
    for row in numbers['rows']:
        assert [run['seed'] for run in row['runs']] == [0, 1]
        assert row['psnr']['n'] == 2 and row['psnr']['std'] is not None
        assert row['psnr']['mean'] == pytest.approx(np.mean([run['psnr'] for run in row['runs']]))
        for run in row['runs']:
            assert run['iters'] == 2
            for key in ('psnr', 'ssim', 'train_s', 'infer_s'):
                assert math.isfinite(run[key]) and run[key] > 0, (row['name'], key)
    assert [list(run['stages']) for run in numbers['rows'][0]['runs']] == [['pretrain', 'train']] * 2
    assert numbers['rows'][0]['runs'][0]['psnr'] != numbers['rows'][0]['runs'][1]['psnr']  # seeds differ
    assert numbers['rows'][0]['params'] == count_parameters(scaled_network(BY_NAME['cnlrn']))
    md = (out / 'QUALITY.md').read_text()
    assert ' '.join(['cnlrn bench-quality', *args]) in md
    assert '| CNLRN | `options/joint.yml` | 3.90 M |' in md and '27.770 / 0.7784' in md and '27.532 / 0.7712' in md
    assert "Of the paper's 3 pairwise orderings among these methods" in md
    assert '**not run**: ESRGAN and CNLRN-GAN left out' in md
    assert cv2.imread(str(out / 'quality.png')) is not None

    (out / 'QUALITY.md').unlink()
    assert run_command('cnlrn', 'bench-quality', '--out', 'out', '--report-only', cwd=tmp_path).returncode == 0
    assert (out / 'QUALITY.md').read_text() == md


def official_reds(root):
    """A tiny extracted REDS in the official layout: 2 training clips of 4 frames (a batch of 8), Val300's frames
    of 2 clips."""
    rng = np.random.default_rng(0)
    frames = {'train': [f'{i:08d}' for i in range(4)], 'val': ['00000009', '00000019']}
    for split, names in frames.items():
        for clip in ('000', '001'):
            for name in names:
                sharp = smooth_image(rng, 64, 64)
                write_image(root / f'{split}_sharp' / clip / f'{name}.png', sharp)
                blurry = bicubic_resize_uint8(cv2.blur(sharp, (7, 7)), 1 / 4)
                write_image(root / f'{split}_blur_bicubic' / 'X4' / clip / f'{name}.png', blurry)


@pytest.mark.slow
def test_reds_root_two_seeds_on_a_time_budget(tmp_path):
    root = tmp_path / 'REDS'
    official_reds(root)
    assert run_command('cnlrn', 'prepare-reds', '--root', root, '--workers', '1').returncode == 0
    args = ['--data', root, '--seeds', '2', '--budget-s', '1.5', '--val-frames', '3', '--variants', 'srn_rcan']
    result = run_command('cnlrn', 'bench-quality', *args, '--out', 'out', cwd=tmp_path, **no_vgg19(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    numbers = json.loads((tmp_path / 'out' / 'quality.json').read_text())
    assert numbers['settings']['budget'] == dict(unit='s', amount=1.5)
    assert numbers['settings']['data_header'].startswith('REDS prepared by `cnlrn prepare-reds`')
    assert numbers['val']['names'] == ['000_00000009', '001_00000009', '001_00000019']  # 3 of 4, spread evenly
    (row,) = numbers['rows']
    for run in row['runs']:
        stages = run['stages']
        assert stages['pretrain']['iters'] >= 1 and stages['train']['iters'] >= 1
        # a time budget ends each stage at the first step past its share (pre-training: a quarter)
        assert stages['pretrain']['seconds'] >= 1.5 / 4 and stages['train']['seconds'] >= 1.5 * 3 / 4
        assert run['iters'] == stages['pretrain']['iters'] + stages['train']['iters']
    md = (tmp_path / 'out' / 'QUALITY.md').read_text()
    assert '1.5 s of training wall time' in md and '| SRN+RCAN | `options/baselines/srn_rcan.yml` |' in md
