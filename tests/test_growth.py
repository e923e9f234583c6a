"Growth mechanisms: each keeps the isolation proofs, counts its FLOPs exactly, and is deterministic."
import copy, math
import pytest, torch
from dataclasses import replace
import torch.nn.functional as F
from esper.contracts.stages import SeedStage as S
from esper.config import RunConfig
from esper.trainer import Trainer
from esper.kasmina.blueprints import count_flops
from esper.nissa.output import NissaHub, MemoryBackend
from esper.kasmina.slot import GateConfig
from esper.kasmina.host import MorphogeneticModel, HostCNN, MorphoOptimizer
from esper.kasmina.blueprints import get_blueprint, seed_sizes
from test_kasmina import make, batch, host_grads, reference_forward, to_stage, BPS, PARAM_BPS, OPEN, ORDER

TINY = RunConfig.preset('tiny')

def _play(tr, actions):
    "Step `tr` through `actions` (a masked one plays as WAIT); its history without wall times and NaNs."
    for a in actions: tr.step(a, strict=False)
    return [{k: v for k, v in h.items() if not k.startswith('time/') and v == v} for h in tr.history]

@pytest.mark.parametrize('bp', BPS)
def test_a_skipped_incubator_batch_is_the_identity_and_isolated(bp):
    "`incubating=False`: the slot computes exactly h (float64), the host's gradients are the seedless model's, the seed gets none."
    m = make(bp, S.TRAINING); m.slots[0].incubating = False
    x, y = batch()
    bare = copy.deepcopy(m.host)
    assert torch.equal(m(x), bare(x))
    g = host_grads(m, lambda: F.cross_entropy(m(x), y))
    bare.zero_grad(); F.cross_entropy(bare(x), y).backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(g, bare.parameters()))
    assert all(p.grad is None for p in m.seed_parameters(0))

def _training_epoch_flops(every):
    tr = Trainer(RunConfig.preset('tiny', incubator_every=every)); tr.reset()
    tr.step(1); tr.step(5)                     # germinate, advance: the next epoch is in TRAINING
    assert tr.model.slots[0].stage == S.TRAINING
    before = tr.train_flops; tr.step(0)
    return tr, tr.train_flops - before

@pytest.mark.parametrize('every', [1, 3])
def test_training_flops_count_the_batches_the_incubator_ran(every):
    tr, spent = _training_epoch_flops(every)   # (the seed is now in TRAINING still: WAIT did not advance it)
    m, n, B = tr.model, len(tr.data.train_y), tr.config.batch_size
    sizes = [min(B, n - i) for i in range(0, n, B)]
    full, host = count_flops(m, m.host.input_shape), count_flops(m.host, m.host.input_shape)
    ran = sum(k for i, k in enumerate(sizes) if i % every == 0)
    assert spent == 3 * (full * ran + host * (n - ran))
    assert (every == 1) == (spent == 3 * full * n)

@pytest.mark.parametrize('one_pass', [True, False])
def test_eval_flops_count_validation_and_counterfactual_passes(one_pass):
    tr = Trainer(TINY); tr.one_pass = one_pass; tr.reset()
    e0 = tr.eval_flops
    tr.step(1)                                  # GERMINATED: the seed does not run in the forward, but is measured
    m, c = tr.model, tr.config
    host = count_flops(m.host, m.host.input_shape)
    with m.slots[0].override_alpha(1.): live = count_flops(m, m.host.input_shape)
    assert live > host == count_flops(m, m.host.input_shape)
    shared = m.prefix_flops(0) if one_pass else 0   # one pass: the counterfactuals run only the network after the slot
    assert 0 < m.prefix_flops(0) < host
    assert tr.eval_flops - e0 == host * c.val_size + c.contribution_batch * (live + host - 2 * shared)
    assert tr.history[-1]['model/eval_flops'] == tr.eval_flops

def test_blueprint_menu_puts_a_cheap_block_behind_germinate_conv():
    tr = Trainer(RunConfig.preset('tiny', blueprints=('bottleneck', 'attention', 'norm', 'depthwise'))); tr.reset()
    r = tr.step(1)                              # GERMINATE_CONV
    assert r.germinated and tr.model.slots[0].blueprint == 'bottleneck'
    with pytest.raises(ValueError, match='RunConfig.blueprints must be 4 names'): RunConfig(blueprints=('bottleneck',))

def test_wsd_holds_the_peak_until_the_decay():
    tr = Trainer(RunConfig.preset('tiny', lr_schedule='wsd', decay_frac=0.34)); tr.reset()
    for _ in range(6): tr.step(0)
    lrs = [h['lr/host'] for h in tr.history]
    assert lrs[1] == lrs[2] == lrs[3] == tr.config.lr and lrs[-1] < 0.2 * tr.config.lr
    one = Trainer(TINY); one.reset(); one.step(0); one.step(0); one.step(0)
    assert one.history[2]['lr/host'] < tr.config.lr       # one-cycle is already decaying there

def test_mechanisms_are_deterministic():
    cfg = RunConfig.preset('tiny', incubator_every=2, lr_schedule='wsd', blueprints=('separable', 'attention', 'norm', 'depthwise'))
    hist = []
    for _ in range(2):
        tr = Trainer(cfg); tr.reset(); hist.append(_play(tr, (1, 5, 5, 5, 5, 5)))
    assert hist[0] == hist[1]

LIVE = GateConfig(min_training_epochs=0, blend_epochs=2, min_shadowing_epochs=0, min_probation_epochs=0,
                  g4_max_harm=1., g5_min_contribution=-1., embargo_epochs=2, start='live')

def _live_model(seed=0):
    torch.manual_seed(seed)
    return MorphogeneticModel(HostCNN(1, 5, widths=(4, 8, 8), slots_after=(1,), input_hw=12), LIVE).double()

@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('train', [True, False])
def test_a_live_start_preserves_the_function_exactly(bp, train):
    "Germinating with a live start changes nothing the network computes (float64, bitwise), in training and eval mode."
    m = _live_model().train(train); x, _ = batch()
    before = m(x)
    assert m.slots[0].germinate(bp, 0).passed
    assert torch.equal(m(x), before)
    assert m.slots[0].alpha == 1. and not m.slots[0].isolated

@pytest.mark.parametrize('bp', PARAM_BPS)
def test_a_live_seed_trains_jointly_and_a_skipped_batch_is_the_seedless_model(bp):
    "Live: the host's gradient flows through the seed. Skipped (incubating False): host gradients are the seedless model's, the seed gets none."
    m = _live_model(); assert m.slots[0].germinate(bp, 0).passed
    with torch.no_grad():
        for p in m.slots[0].seed.parameters(): p.add_(0.3 * torch.randn_like(p))
    x, y = batch()
    bare = copy.deepcopy(m.host)
    bare.zero_grad(); F.cross_entropy(bare(x), y).backward()
    live = host_grads(m, lambda: F.cross_entropy(m(x), y))
    assert all(p.grad is not None for p in m.seed_parameters(0))
    assert not all(torch.equal(a, p.grad) for a, p in zip(live, bare.parameters()))  # the seed shapes the host's gradient
    m.slots[0].incubating = False
    assert torch.equal(m(x), bare(x))
    skipped = host_grads(m, lambda: F.cross_entropy(m(x), y))
    assert all(torch.equal(a, p.grad) for a, p in zip(skipped, bare.parameters()))
    assert all(p.grad is None for p in m.seed_parameters(0))

@pytest.mark.parametrize('every', [1, 3])
def test_live_trial_flops_count_the_batches_the_seed_ran(every):
    tr = Trainer(RunConfig.preset('tiny', incubator_every=every, gate=replace(TINY.gate, start='live'))); tr.reset()
    tr.apply(1)                                 # germinate: live from this epoch on
    before = tr.train_flops; tr.step(0)
    m, n, B = tr.model, len(tr.data.train_y), tr.config.batch_size
    sizes = [min(B, n - i) for i in range(0, n, B)]
    full, host = count_flops(m, m.host.input_shape), count_flops(m.host, m.host.input_shape)
    ran = sum(k for i, k in enumerate(sizes) if i % every == 0)
    assert tr.model.slots[0].stage == S.GERMINATED and full > host
    assert tr.train_flops - before == 3 * (full * ran + host * (n - ran))

def _stop_and_resume(cfg):
    "Germinate, advance, stop after two epochs and load its state dict into a fresh trainer: (stopped, restored, the uninterrupted history)."
    a = Trainer(cfg); a.reset(); whole = _play(a, (1, 5, 5, 5, 5, 5))
    b = Trainer(cfg); b.reset(); _play(b, (1, 5))
    c = Trainer(cfg, data=b.data); c.load_state_dict(copy.deepcopy(b.state_dict()))
    return b, c, whole

def test_live_start_and_the_norm_ratio_rule_are_deterministic_and_resume_exactly():
    cfg = RunConfig.preset('tiny', incubator_every=2, seed_lr_rule='norm_ratio', gate=replace(TINY.gate, start='live'))
    b, c, whole = _stop_and_resume(cfg)
    assert c.seed_scale == b.seed_scale and 0 < c.seed_scale[0] != 1.
    assert _play(c, (5, 5, 5, 5)) == whole

WIDEN = [b for b in BPS if b in ('conv_enhance', 'separable')]
NARROW = replace(OPEN, seed_widths=(0.25, 0.5, 0.5, 1., 1.))

def _narrow(bp, start='incubator', seed=0):
    "A float64 model whose slot-0 seed is born at a quarter width (and perturbed, so it is not the identity)."
    torch.manual_seed(seed)
    m = MorphogeneticModel(HostCNN(1, 5, widths=(4, 8, 8), slots_after=(1,), input_hw=12), replace(NARROW, start=start)).double()
    assert m.slots[0].germinate(bp, 0).passed
    with torch.no_grad():
        for p in m.slots[0].seed.parameters(): p.add_(0.3 * torch.randn_like(p))
    return m

@pytest.mark.parametrize('bp', WIDEN)
@pytest.mark.parametrize('start', ['incubator', 'live'])
@pytest.mark.parametrize('train', [True, False])
def test_every_widening_preserves_the_function_exactly(bp, start, train):
    m = _narrow(bp, start).train(train); s = m.slots[0]; x, _ = batch()
    full = get_blueprint(bp).hidden(8)
    seen = [s.seed.hidden]
    for stage in ORDER[1:]:
        with torch.no_grad():
            for p in s.seed.parameters(): p.add_(0.05 * torch.randn_like(p))
        with s.override_alpha(1.): before = m(x)  # what the seed computes, whatever the stage shows
        to_stage(s, stage)
        with s.override_alpha(1.): assert torch.equal(m(x), before)
        seen.append(s.seed.hidden)
    assert seen == [full // 4, full // 2, full // 2, full, full, full]
    assert s.metrics.params == get_blueprint(bp).param_count(8) == sum(p.numel() for p in s.seed.parameters())

@pytest.mark.parametrize('bp', WIDEN)
def test_a_narrow_seed_keeps_the_isolation_proofs(bp):
    "TRAINING: host gradients equal the seedless model's; BLENDING: equal those with the seed's output fed in as a constant."
    m = _narrow(bp); to_stage(m.slots[0], S.TRAINING); x, y = batch()
    bare = copy.deepcopy(m.host); bare.zero_grad(); F.cross_entropy(bare(x), y).backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(host_grads(m, lambda: F.cross_entropy(m(x), y)), bare.parameters()))
    assert sum(float(p.grad.abs().sum()) for p in m.seed_parameters(0)) > 0
    to_stage(m.slots[0], S.BLENDING)
    g = host_grads(m, lambda: F.cross_entropy(m(x), y))
    assert all(torch.equal(a, b) for a, b in zip(g, host_grads(m, lambda: F.cross_entropy(reference_forward(m, x, 'const'), y))))

def test_widening_keeps_the_seed_groups_momentum_and_adds_the_new_units():
    m = _narrow('conv_enhance').float(); s = m.slots[0]
    opt = MorphoOptimizer(m, lr=0.1, seed_lr=0.1); to_stage(s, S.TRAINING); opt.sync()
    x, y = batch(); x = x.float()
    opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()
    old = list(s.seed.parameters()); bufs = [opt.optimizer.state[p]['momentum_buffer'].clone() for p in old]
    to_stage(s, S.SHADOWING); opt.sync()
    group = opt.group('seed0')['params']
    assert len(group) > len(old) and all(any(q is p for q in group) for p in old)
    assert all(torch.equal(opt.optimizer.state[p]['momentum_buffer'], b) for p, b in zip(old, bufs))

def test_progressive_width_in_a_run_counts_flops_exactly_and_resumes_exactly():
    cfg = RunConfig.preset('tiny', gate=replace(TINY.gate, start='live', seed_widths=(0.25, 0.5, 1., 1., 1.)))
    tr = Trainer(cfg); tr.reset(); tr.apply(1)
    before = tr.train_flops; tr.step(0)
    m, n = tr.model, len(tr.data.train_y)
    assert tr.train_flops - before == 3 * n * count_flops(m, m.host.input_shape)
    C, H, W = m.host.slot_shapes()[0]; bp = get_blueprint('conv_enhance')
    assert m.slots[0].seed.hidden == bp.hidden(C) // 4 == 4
    assert count_flops(m, m.host.input_shape) == count_flops(m.host, m.host.input_shape) + bp.flops(C, H, W, 4) < count_flops(m.host, m.host.input_shape) + bp.flops(C, H, W)
    b, c, whole = _stop_and_resume(cfg)
    assert seed_sizes(c.model.slots[0].seed) == seed_sizes(b.model.slots[0].seed) == [4, 4]
    assert _play(c, (5, 5, 5, 5)) == whole

def test_the_default_preset_grows_live_and_narrow_and_round_trips_through_json():
    import json
    d = RunConfig.preset('default')
    assert (d.lr_schedule, d.gate.start, d.gate.seed_widths) == ('wsd', 'live', (0.25, 0.25, 0.5, 0.5, 1.))
    back = RunConfig.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d and back.hash() == d.hash()
