"""CNLRNModel without the pipeline: stages, parameter groups, deblur loading, EMA, overfitting, failed checkpoint
saves, old training states, released and shipped weights."""

import copy
import logging
import os
from types import SimpleNamespace

import pytest
import torch
import yaml
from basicsr.models import build_model

from cnlrn_arch.archs.deblur_arch import CNLRNPreDeblur
from cnlrn_arch.models.robust_sr_model import RobustSRModel
from cnlrn_arch.runtime.self_ensemble import self_ensemble
from cnlrn_base.errors import UserError
from tests.helpers import (
    DATA_DIR,
    REPO_DIR,
    TINY_CNLRN,
    TINY_PREDEBLUR,
    TINY_PREDEBLUR_ARGS,
    disk_fills_half_way,
    make_opt,
)

# network and train section of each stage: joint training at two learning rates with the gradient loss
STAGES = dict(
    joint=(TINY_CNLRN, dict(stage='joint', optim_g=dict(lr_deblur=1e-4))),
    pretrain=(TINY_PREDEBLUR, dict(stage='pretrain', grad_opt=None)),
)


def stage_opt(stage='joint', **path):
    network, train = STAGES[stage]
    return make_opt(network, train, **path)


def test_joint_stage_has_two_learning_rates():
    model = build_model(stage_opt('joint'))
    assert model.get_current_learning_rate() == [1e-4, 2e-3]
    deblur_params = {id(p) for p in model.net_g.DeblurNet.parameters()}
    first, second = model.optimizer_g.param_groups
    assert {id(p) for p in first['params']} == deblur_params
    assert not deblur_params & {id(p) for p in second['params']}
    model.update_learning_rate(51)
    low, high = model.get_current_learning_rate()
    assert 0 < low < 1e-4 and 0 < high < 2e-3 and high / low == pytest.approx(20, rel=1e-3)


def test_adam_runs_fused_unless_the_options_choose_an_implementation():
    assert build_model(stage_opt('joint')).optimizer_g.defaults['fused'] is True
    opt = stage_opt('joint')
    opt['train']['optim_g']['foreach'] = True
    chosen = build_model(opt).optimizer_g.defaults
    assert chosen['foreach'] is True and not chosen['fused']


def test_stage_and_network_must_agree():
    opt = stage_opt('pretrain')
    opt['network_g'] = dict(TINY_CNLRN)
    with pytest.raises(UserError, match="stage 'pretrain' needs network_g:type CNLRNPreDeblur"):
        build_model(opt)


def test_pretrain_targets_sharp_lr():
    model = build_model(stage_opt('pretrain'))
    batch = dict(lq=torch.rand(1, 3, 8, 8), gt=torch.rand(1, 3, 32, 32), gt_lr=torch.rand(1, 3, 8, 8))
    model.feed_data(batch)
    assert model.gt is batch['gt_lr']


@pytest.fixture
def pretrain_checkpoint(tmp_path):
    net = CNLRNPreDeblur(**TINY_PREDEBLUR_ARGS)
    path = tmp_path / 'net_g_10.pth'
    torch.save({'params': net.state_dict()}, path)
    return path, net


def test_joint_loads_pretrained_deblur_and_drops_head(pretrain_checkpoint):
    path, pre = pretrain_checkpoint
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        model = build_model(stage_opt('joint', pretrain_network_deblur=str(path)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    expected = {k: v for k, v in pre.DeblurNet.state_dict().items() if not k.startswith('outBlock.3')}
    loaded = model.net_g.DeblurNet.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    log = '\n'.join(records)
    assert (
        'Dropped 2 tensors not in DeblurNet: DeblurNet.outBlock.3.body.0.bias, DeblurNet.outBlock.3.body.0.weight'
        in log
    )
    assert f'Loaded {len(expected)} DeblurNet tensors' in log


def test_missing_deblur_weight_is_an_error(pretrain_checkpoint, tmp_path):
    _, pre = pretrain_checkpoint
    state = pre.state_dict()
    del state['DeblurNet.body.0.body.0.body.0.weight']
    path = tmp_path / 'partial.pth'
    torch.save({'params': state}, path)
    with pytest.raises(
        UserError, match=r'partial.pth: deblurring weights missing: DeblurNet.body.0.body.0.body.0.weight'
    ):
        build_model(stage_opt('joint', pretrain_network_deblur=str(path)))


def ema_opt(**path):
    opt = stage_opt('joint', **path)
    opt['train']['ema_decay'] = 0.999
    return opt


def test_the_ema_network_gets_the_pretrained_deblur_weights_too(pretrain_checkpoint):
    """Else the EMA network, which validation uses and net_g_latest.pth keeps as params_ema, starts from noise."""
    path, pre = pretrain_checkpoint
    model = build_model(ema_opt(pretrain_network_deblur=str(path)))
    expected = {k: v for k, v in pre.DeblurNet.state_dict().items() if not k.startswith('outBlock.3')}
    ema = model.net_g_ema.DeblurNet.state_dict()
    assert ema.keys() == expected.keys()
    assert all(torch.equal(ema[k], expected[k]) for k in expected)
    trained = model.net_g.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.net_g_ema.state_dict().items())


def test_testing_uses_the_ema_network_when_there_is_one():
    model = build_model(ema_opt())
    with torch.no_grad():
        for p in model.net_g_ema.parameters():
            p.mul_(0.5)  # the EMA network now computes something else than net_g
    lq = torch.rand(1, 3, 8, 8)
    model.feed_data(dict(lq=lq))
    model.test()
    with torch.no_grad():
        ema_output, output = model.net_g_ema(lq), model.net_g(lq)
    assert torch.equal(model.output, ema_output)
    assert not torch.allclose(model.output, output, atol=1e-3)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = build_model(stage_opt('joint'))
    gt = torch.rand(2, 3, 32, 32)
    batch = dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt)
    losses = []
    for it in range(1, 61):
        model.feed_data(batch)
        model.optimize_parameters(it)
        losses.append(model.get_current_log()['l_pix'])
    assert losses[-1] < 0.5 * losses[0], losses


def test_self_ensemble_undoes_each_transform():
    x = torch.rand(1, 3, 6, 10)
    assert torch.allclose(self_ensemble(lambda t: 2 * t, x), 2 * x)
    # a net that is not rotation-equivariant: the ensemble averages 8 distinct outputs
    weight = torch.rand(3, 3, 3, 3)
    net = lambda t: torch.nn.functional.conv2d(t, weight, padding=1)  # noqa: E731
    manual = []
    for flip in (False, True):
        for rot in range(4):
            t = x.flip(-1) if flip else x
            out = torch.rot90(net(torch.rot90(t, rot, (2, 3))), -rot, (2, 3))
            manual.append(out.flip(-1) if flip else out)
    assert torch.allclose(self_ensemble(net, x), torch.stack(manual).mean(0), atol=1e-6)
    assert not torch.allclose(self_ensemble(net, x), net(x), atol=1e-3)


def test_self_ensemble_option_is_used_in_test():
    opt = stage_opt('joint')
    model = build_model(copy.deepcopy(opt))
    opt['val'] = dict(self_ensemble=True)
    ensemble_model = build_model(opt)
    ensemble_model.net_g.load_state_dict(model.net_g.state_dict())
    lq = torch.rand(1, 3, 8, 12)
    for m in (model, ensemble_model):
        m.feed_data(dict(lq=lq))
        m.test()
    expected = self_ensemble(model.net_g.eval(), lq)
    assert torch.allclose(ensemble_model.output, expected.detach(), atol=1e-5)
    assert not torch.allclose(model.output, ensemble_model.output, atol=1e-4)


def test_non_finite_updates_are_skipped_then_stop_training(tmp_path):
    opt = stage_opt('joint')
    opt['train']['nonfinite_patience'] = 3
    opt['path']['models'] = str(tmp_path)
    model = build_model(opt)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    bad = dict(lq=torch.full((1, 3, 8, 8), float('nan')), gt=torch.rand(1, 3, 32, 32))
    for it in (1, 2):
        model.feed_data(bad)
        model.optimize_parameters(it)
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    good = dict(lq=torch.rand(1, 3, 8, 8), gt=torch.rand(1, 3, 32, 32))
    model.feed_data(good)
    model.optimize_parameters(3)  # a finite update resets the count
    assert model.nonfinite_guard.in_a_row == 0
    model.checkpoints.last_saved_iter = 3
    for it in (4, 5):
        model.feed_data(bad)
        model.optimize_parameters(it)
    model.feed_data(bad)
    with pytest.raises(
        UserError,
        match=r'stopped at iter 6 after 3 non-finite updates in a row; last good '
        r'checkpoint: .*net_g_3.pth',
    ):
        model.optimize_parameters(6)
    assert all(torch.isfinite(v).all() for v in model.net_g.state_dict().values())


@pytest.mark.parametrize('saves_through', [0, 1], ids=['network', 'training state'])
def test_a_checkpoint_that_cannot_be_written_stops_training_and_the_last_complete_one_stays(
    saves_through, tmp_path, monkeypatch
):
    """The disk fills during iteration 4's network checkpoint, or after it during its training state."""
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir()
    states.mkdir()
    model = build_model(stage_opt('joint', models=str(models), training_states=str(states)))
    model.save(0, 2)
    before = {p.name: p.read_bytes() for p in (models / 'net_g_2.pth', states / '2.state')}
    disk_fills_half_way(monkeypatch, after=saves_through)

    with pytest.raises(UserError) as err:
        model.save(0, 4)

    failed = [models / 'net_g_4.pth', states / '4.state'][saves_through]
    assert str(err.value).startswith(
        f'cannot write {failed}: No space left on device on the disk of {failed.parent} ('
    ) and str(err.value).endswith(
        f' MiB free); training stopped, last complete checkpoint: {models}/net_g_2.pth (resume with --auto_resume)'
    )
    # no temporary file, no partial file under a final name; the complete checkpoint of iteration 2 unchanged
    assert sorted(os.listdir(models)) == ['net_g_2.pth', 'net_g_4.pth'][: 1 + saves_through]
    assert os.listdir(states) == ['2.state']
    assert {p.name: p.read_bytes() for p in (models / 'net_g_2.pth', states / '2.state')} == before


RESUME_V1 = os.path.join(DATA_DIR, 'resume_v1')


def test_resumes_a_training_state_of_the_first_format(tmp_path):
    """tests/data/resume_v1 was written before RobustSRModel existed; it resumes and trains on unchanged."""
    with open(os.path.join(RESUME_V1, 'options.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt['path'] = dict(
        pretrain_network_g=os.path.join(RESUME_V1, 'net_g_2.pth'),
        models=str(tmp_path),
        training_states=str(tmp_path),
        resume_state=os.path.join(RESUME_V1, '2.state'),
    )
    state = torch.load(os.path.join(RESUME_V1, '2.state'), weights_only=True)
    model = build_model(opt)
    assert isinstance(model, RobustSRModel)
    model.resume_training(state)
    resumed = model.optimizer_g.state_dict()
    assert [len(g['params']) for g in resumed['param_groups']] == [64, 20]  # DeblurNet, then the rest
    assert all(
        torch.equal(resumed['state'][i]['exp_avg'], s['exp_avg']) for i, s in state['optimizers'][0]['state'].items()
    )
    assert model.schedulers[0].state_dict() == state['schedulers'][0]
    model.update_learning_rate(3)
    gt = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model.feed_data(dict(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt))
    model.optimize_parameters(3)
    # the losses and learning rates the code that wrote the fixture computed for this iteration
    log = model.get_current_log()
    assert log['l_pix'] == pytest.approx(0.2541355, rel=1e-4) and log['l_grad'] == pytest.approx(0.1591377, rel=1e-4)
    assert model.get_current_learning_rate() == pytest.approx([9.046039886902862e-05, 0.001809026543525229])
    assert model.optimizer_g.state_dict()['state'][0]['step'] == 3
    assert all(torch.isfinite(v).all() for v in model.net_g.state_dict().values())
    model.save(0, 3)
    # network checkpoints now also hold their options (network_g)
    for name, old, added in (('net_g_3.pth', 'net_g_2.pth', {'network_g'}), ('3.state', '2.state', set())):
        new_file = torch.load(tmp_path / name, weights_only=True)
        old_file = torch.load(os.path.join(RESUME_V1, old), weights_only=True)
        assert new_file.keys() == old_file.keys() | added
    assert list(torch.load(tmp_path / 'net_g_3.pth', weights_only=True)['params']) == list(
        torch.load(os.path.join(RESUME_V1, 'net_g_2.pth'), weights_only=True)['params']
    )


def test_model_reproduces_the_released_output(tmp_path):
    """The released-keys fixture through load_network and test(), as ``basicsr test`` runs it."""
    fixture = torch.load(os.path.join(DATA_DIR, 'cnlrn_small_fixture.pt'), weights_only=True)
    torch.save({'params': fixture['state_dict']}, tmp_path / 'released.pth')
    model = build_model(
        dict(
            model_type='CNLRNModel',
            is_train=False,
            dist=False,
            num_gpu=0,
            scale=4,
            network_g=dict(type='CNLRN', **fixture['config']),
            path=dict(pretrain_network_g=str(tmp_path / 'released.pth')),
            val=dict(),
        )
    )
    model.feed_data(dict(lq=fixture['input']))
    model.test()
    assert (model.output - fixture['output']).abs().max().item() < 1e-5


def test_model_loads_the_shipped_demo_checkpoint():
    with open(os.path.join(REPO_DIR, 'options/demo/test_checkpoint.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    checkpoint = os.path.join(REPO_DIR, opt['path']['pretrain_network_g'])
    opt.update(is_train=False, dist=False, path=dict(opt['path'], pretrain_network_g=checkpoint))
    model = build_model(opt)
    shipped = torch.load(checkpoint, weights_only=True)['params']
    assert all(torch.equal(v, shipped[k]) for k, v in model.net_g.state_dict().items())
    model.feed_data(dict(lq=torch.rand(1, 3, 12, 16)))
    model.test()
    assert model.output.shape == (1, 3, 48, 64) and torch.isfinite(model.output).all()


def test_amp_under_data_parallel_is_refused_before_anything_is_built():
    """DataParallel re-enters autocast in each replica's thread without the dtype: bf16 would run as fp16."""
    opt = make_opt(train=dict(amp='bf16'))
    opt['num_gpu'] = 2
    with pytest.raises(UserError, match=r'num_gpu > 1 in one process \(DataParallel\).*torchrun --nproc_per_node'):
        build_model(opt)


def val_loader(name='val'):
    """What validation reads of a data loader besides its batches: the data set's name."""
    return SimpleNamespace(dataset=SimpleNamespace(opt={'name': name}))


def test_validation_says_how_long_it_took_and_warns_near_the_distributed_timeout(basicsr_log, monkeypatch):
    model = build_model(make_opt())
    for name in ('nondist_validation', 'dist_validation'):  # rank 0 validating, the others waiting: timed alike
        monkeypatch.setattr(model, name, lambda *args: None)
    model.validation(val_loader(), 4, None)
    assert 'Validation at iter 4 took 0 s.' in basicsr_log.text and 'timeout_minutes' not in basicsr_log.text
    model.opt.update(dist=True, dist_params={'timeout_minutes': 1e-9})  # any duration is over half of it
    model.validation(val_loader(), 8, None)
    assert 'over half of dist_params:timeout_minutes (1e-09), for which the other ranks wait' in basicsr_log.text


def test_validation_after_the_training_loop_is_numbered_total_iter_and_not_repeated(basicsr_log, monkeypatch):
    """basicsr's train_pipeline validates after its loop with the count the loop ended at, past total_iter."""
    model = build_model(make_opt(train=dict(total_iter=10)))
    validated = []
    monkeypatch.setattr(model, 'nondist_validation', lambda loader, it, *args: validated.append((loader, it)))
    first, second = val_loader('first'), val_loader('second')
    model.validation(first, 8, None)  # in the loop, val_freq 8
    model.validation(first, 12, None)  # after it: the weights of iter 10
    model.validation(second, 12, None)
    model.validation(first, 10, None)  # the same weights again (val_freq 5 would validate 10 in the loop)
    assert validated == [(first, 8), (first, 10), (second, 10)]
    assert 'Validation of first at iter 10 done already: the weights are the same.' in basicsr_log.text
