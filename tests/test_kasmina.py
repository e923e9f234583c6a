"""Kasmina's safety proofs, in float64 and for every blueprint: function preservation, gradient isolation per stage,
gates passing and failing, impossible requests, culling, optimizer-state carry-over, export and checkpoint round trips."""
import copy, io, json, math, os
os.environ.setdefault('WANDB_MODE', 'offline')
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from esper.contracts.stages import SeedStage, InvalidTransitionError
from esper.contracts.schemas import GateLevel, TelemetryEventType
from esper.kasmina.blueprints import BLUEPRINT_REGISTRY, get_blueprint, count_flops
from esper.kasmina.isolation import AlphaSchedule, GradientIsolationMonitor, incubator_forward
from esper.kasmina.slot import GateConfig, SeedSlot, SlotOperationError
from esper.kasmina.host import HostCNN, MorphogeneticModel, MorphoOptimizer, GrownCNN, load_export

S = SeedStage
BPS = [n for n, b in BLUEPRINT_REGISTRY.items() if 'BCHW' in b.layouts]  # image blueprints (HostCNN); token ones: tests/test_wrap.py
PARAM_BPS = [b for b in BPS if b != 'noop']
OPEN = GateConfig(min_training_epochs=0, blend_epochs=2, min_shadowing_epochs=0, min_probation_epochs=0,
                  g4_max_harm=1., g5_min_contribution=-1., embargo_epochs=2)
ORDER = [S.GERMINATED, S.TRAINING, S.BLENDING, S.SHADOWING, S.PROBATIONARY, S.FOSSILIZED]


class ListHub:
    def __init__(self): self.events = []
    def emit(self, e): self.events.append(e)
    def types(self): return [e.type for e in self.events]


def to_stage(slot, stage, epoch=0):
    "Drive `slot` (an OPEN-config slot holding a seed) forward until it reaches `stage`."
    while slot.stage != stage:
        if slot.stage == S.BLENDING:
            while slot.alpha < 1: slot.step_epoch(epoch)
        if slot.stage in (S.SHADOWING, S.PROBATIONARY): slot.record_contribution(0.5, 0.5)
        assert slot.advance(epoch).passed


def make(bp, stage=S.GERMINATED, seed=0, slots_after=(1,), perturb=True, hub=None):
    "A float64 model with a `bp` seed in slot 0 at `stage`; the seed's parameters perturbed so it is not the identity."
    torch.manual_seed(seed)
    m = MorphogeneticModel(HostCNN(1, 5, widths=(4, 8, 8), slots_after=slots_after, input_hw=12), OPEN, hub).double()
    assert m.slots[0].germinate(bp, 0).passed
    if perturb:
        with torch.no_grad():
            for p in m.slots[0].seed.parameters(): p.add_(0.3 * torch.randn_like(p))
    to_stage(m.slots[0], stage)
    return m


def batch(seed=1, n=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 12, 12, generator=g, dtype=torch.float64), torch.randint(0, 5, (n,), generator=g)


def host_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    return [p.grad.clone() for p in model.host.parameters()]


def reference_forward(m, x, mode):
    "The model's forward with slot 0 replaced by: 'const' = the seed's output fed in as a constant, 'live' = g(h), 'leaky' = blend without detach."
    slot, i0 = m.slots[0], m.host.slots_after[0]
    for i, b in enumerate(m.host.blocks):
        x = b(x)
        if i == i0:
            if mode == 'const':
                hd = x.detach(); c = slot.seed(hd).detach(); x = x + slot.alpha * (c - hd)
            elif mode == 'live': x = slot.seed(x)
            elif mode == 'leaky': x = x + slot.alpha * (slot.seed(x) - x)
    return m.host.classify(x)


# ---------------------------------------------------------------- blueprints
@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('C', [1, 6, 16])
def test_blueprint_costs_and_identity(bp, C):
    b = get_blueprint(bp)
    seed = b.build(C).double()
    assert sum(p.numel() for p in seed.parameters()) == b.param_count(C)
    assert count_flops(seed, (C, 5, 7)) == b.flops(C, 5, 7)
    h = torch.randn(3, C, 5, 7, dtype=torch.float64)
    assert torch.equal(seed(h), h)  # a new seed is exactly the identity


def test_registry_and_conv_enhance_size():
    assert BPS == ['noop', 'conv_enhance', 'attention', 'norm', 'depthwise', 'bottleneck', 'separable']
    assert 9000 < get_blueprint('conv_enhance').param_count(16) < 9500  # DESIGN §10: ~9.3k params at 16 channels
    with pytest.raises(ValueError, match="unknown blueprint 'x'; known: noop, conv_enhance, attention, norm, depthwise, bottleneck, separable"):
        get_blueprint('x')


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(['linear', 'cosine', 'sigmoid']), st.integers(1, 20), st.integers(-2, 25))
def test_alpha_schedule_properties(kind, epochs, t):
    a = AlphaSchedule(kind, epochs)
    assert (a(t) == 1.0) == (t >= epochs)
    assert 0 < a(t) <= 1 and a(t) <= a(t + 1)


# ---------------------------------------------------------------- function preservation and isolation
@pytest.mark.parametrize('bp', BPS)
def test_function_preserved_at_germination_and_throughout_training(bp):
    m = make(bp, S.GERMINATED)
    x, y = batch()
    assert torch.equal(m(x), m.host(x))
    to_stage(m.slots[0], S.TRAINING)
    opt = MorphoOptimizer(m, lr=0.05, seed_lr=0.5)
    before = [p.detach().clone() for p in m.seed_parameters(0)]
    for step in range(3):
        out = m(x)
        assert torch.equal(out, m.host(x)), f"step {step}: output changed by a seed in TRAINING"
        opt.zero_grad(); F.cross_entropy(out, y).backward(); opt.step()
    if bp != 'noop': assert any(not torch.equal(a, b) for a, b in zip(before, m.seed_parameters(0))), "the seed did not learn"
    assert torch.equal(m(x), m.host(x))


@pytest.mark.parametrize('bp', BPS)
def test_training_isolation_host_grads_equal_seedless_model(bp):
    m = make(bp, S.TRAINING)
    x, y = batch()
    bare = copy.deepcopy(m.host)
    g_model = host_grads(m, lambda: F.cross_entropy(m(x), y))
    bare.zero_grad(); F.cross_entropy(bare(x), y).backward()
    for a, p in zip(g_model, bare.parameters()): assert torch.equal(a, p.grad)
    seed_grads = [p.grad for p in m.seed_parameters(0)]
    if bp != 'noop':
        assert seed_grads and all(g is not None and torch.isfinite(g).all() for g in seed_grads)
        assert sum(float(g.abs().sum()) for g in seed_grads) > 0, "seed gets no gradient in TRAINING"


@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('stage', [S.BLENDING, S.SHADOWING])
def test_blend_isolation_host_grads_equal_constant_seed_output(bp, stage):
    m = make(bp, stage)
    x, y = batch()
    assert m.slots[0].alpha == (1 / 3 if stage == S.BLENDING else 1.0)
    g_model = host_grads(m, lambda: F.cross_entropy(m(x), y))
    seed_grad = sum(float(p.grad.abs().sum()) for p in m.seed_parameters(0))
    g_const = host_grads(m, lambda: F.cross_entropy(reference_forward(m, x, 'const'), y))
    for a, b in zip(g_model, g_const): assert torch.equal(a, b)
    if bp != 'noop':
        assert seed_grad > 0
        g_leaky = host_grads(m, lambda: F.cross_entropy(reference_forward(m, x, 'leaky'), y))
        assert any(not torch.allclose(a, b) for a, b in zip(g_model, g_leaky)), "the comparison cannot detect a leak"


@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('stage', [S.PROBATIONARY, S.FOSSILIZED])
def test_gradient_reaches_host_from_probation_on(bp, stage):
    m = make(bp, stage)
    x, y = batch()
    g_model = host_grads(m, lambda: F.cross_entropy(m(x), y))
    g_live = host_grads(m, lambda: F.cross_entropy(reference_forward(m, x, 'live'), y))
    for a, b in zip(g_model, g_live): assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    if bp != 'noop':
        g_const = host_grads(m, lambda: F.cross_entropy(reference_forward(m, x, 'const'), y))
        assert any(not torch.allclose(a, b) for a, b in zip(g_model, g_const)), "no gradient reaches the host through the seed"


def test_isolation_monitor_sees_learning_catches_leaks_and_always_unhooks():
    hub = ListHub()
    m = make('conv_enhance', S.TRAINING, hub=hub)
    x, y = batch()
    with GradientIsolationMonitor(m.slots, hub=hub) as mon: F.cross_entropy(m(x), y).backward()
    assert mon.ok and mon.grad_norm(0) > 0
    with GradientIsolationMonitor(m.slots, hub=hub) as mon: F.cross_entropy(reference_forward(m, x, 'live'), y).backward()
    assert not mon.ok and hub.types()[-1] == TelemetryEventType.ISOLATION_VIOLATION
    with pytest.raises(RuntimeError, match='boom'):
        with GradientIsolationMonitor(m.slots):
            F.cross_entropy(m(x), y).backward(); raise RuntimeError('boom')
    seed = m.slots[0].seed
    assert not seed._forward_pre_hooks and all(not p._backward_hooks for p in seed.parameters())


# ---------------------------------------------------------------- gates
def slot_with(cfg=OPEN, bp='conv_enhance'):
    hub = ListHub(); s = SeedSlot(0, 4, cfg, hub).double(); return s, hub


def assert_failed(slot, hub, gate, failed_check, stage):
    r = slot.advance(9)
    assert (r.gate, r.passed, slot.stage) == (gate, False, stage) and failed_check in r.checks_failed
    assert hub.events[-1].type == TelemetryEventType.GATE_FAILED and hub.events[-1].data['gate'] == gate.name


def test_g0_fails_over_budget_and_passes_within():
    s, hub = slot_with(GateConfig(max_seed_params=100))
    r = s.germinate('conv_enhance', 0)
    assert (r.gate, r.passed, r.checks_failed, s.stage, s.seed) == (GateLevel.G0, False, ('within_param_budget',), S.DORMANT, None)
    assert list(s.parameters()) == [] and hub.types() == [TelemetryEventType.GATE_FAILED]
    assert s.germinate('norm', 0).passed and s.stage == S.GERMINATED  # 4² + 8 = 24 params


def test_g1_fails_on_nonfinite_seed():
    s, hub = slot_with(); s.germinate('norm', 0)
    w = next(s.seed.parameters())
    with torch.no_grad(): w[0, 0] = float('nan')
    assert_failed(s, hub, GateLevel.G1, 'params_finite', S.GERMINATED)
    with torch.no_grad(): w[0, 0] = 0.
    assert s.advance(0).passed and s.stage == S.TRAINING


def test_g2_fails_until_trained_and_on_nonfinite_loss():
    s, hub = slot_with(GateConfig(min_training_epochs=2)); s.germinate('depthwise', 0); s.advance(0)
    s.step_epoch(0)
    assert_failed(s, hub, GateLevel.G2, 'trained_long_enough', S.TRAINING)
    s.step_epoch(1); s.record_train_loss(float('inf'))
    assert_failed(s, hub, GateLevel.G2, 'loss_finite', S.TRAINING)
    s.record_train_loss(0.7)
    assert s.advance(2).passed and s.stage == S.BLENDING


def test_g3_fails_until_alpha_reaches_one():
    s, hub = slot_with(GateConfig(min_training_epochs=0, blend_epochs=3, alpha_schedule='cosine'))
    s.germinate('attention', 0); s.advance(0); s.advance(0)
    alphas = [s.alpha]
    for e in range(2): s.step_epoch(e); alphas.append(s.alpha); assert_failed(s, hub, GateLevel.G3, 'blend_complete', S.BLENDING)
    s.step_epoch(2)
    assert alphas == sorted(alphas) and alphas[-1] < 1 and s.alpha == 1.0
    assert s.advance(3).passed and s.stage == S.SHADOWING


def test_g4_fails_unmeasured_and_harmful():
    s, hub = slot_with(GateConfig(min_training_epochs=0, blend_epochs=1, min_shadowing_epochs=1, g4_max_harm=0.01))
    s.germinate('conv_enhance', 0); s.advance(0); s.advance(0); s.record_contribution(0.9, 0.8); s.step_epoch(0); s.advance(1)
    assert s.stage == S.SHADOWING
    assert_failed(s, hub, GateLevel.G4, 'shadowed_long_enough', S.SHADOWING)
    s.step_epoch(1)
    assert_failed(s, hub, GateLevel.G4, 'contribution_measured', S.SHADOWING)  # the BLENDING measurement does not count
    s.record_contribution(0.80, 0.82)
    assert_failed(s, hub, GateLevel.G4, 'not_harmful', S.SHADOWING)
    s.record_contribution(0.815, 0.82)
    assert s.advance(2).passed and s.stage == S.PROBATIONARY


def test_g5_fails_short_and_unearned_then_fossilizes_with_report():
    s, hub = slot_with(GateConfig(min_training_epochs=0, blend_epochs=1, min_shadowing_epochs=0, min_probation_epochs=2,
                                  g5_min_contribution=0.01))
    s.germinate('norm', 0); s.advance(0); s.advance(0)
    s.step_epoch(0); s.advance(1); s.record_contribution(0.5, 0.5); s.advance(1)
    assert s.stage == S.PROBATIONARY
    s.step_epoch(1); s.record_contribution(0.9, 0.8)
    assert_failed(s, hub, GateLevel.G5, 'probation_long_enough', S.PROBATIONARY)
    s.step_epoch(2); s.record_contribution(0.805, 0.8)
    assert_failed(s, hub, GateLevel.G5, 'contribution_sufficient', S.PROBATIONARY)
    s.record_contribution(0.83, 0.8)
    assert s.advance(3).passed and s.stage == S.FOSSILIZED
    rep = s.reports[-1]
    assert (rep.outcome, rep.blueprint, rep.germinated_epoch, rep.ended_epoch) == (S.FOSSILIZED, 'norm', 0, 3)
    assert [h[0] for h in rep.history] == [x.name for x in ORDER]
    assert TelemetryEventType.SEED_FOSSILIZED in hub.types()


# ---------------------------------------------------------------- impossible requests
def snapshot(slot): return json.dumps(slot.state(), allow_nan=False), {k: v.clone() for k, v in slot.state_dict().items()}


def unchanged(slot, snap):
    s, sd = snapshot(slot)
    return s == snap[0] and sd.keys() == snap[1].keys() and all(torch.equal(sd[k], snap[1][k]) for k in sd)


@pytest.mark.parametrize('setup, call, err, msg', [
    ('dormant', lambda s: s.advance(0), SlotOperationError, 'cannot advance\\(\\) in stage DORMANT; germinate\\(\\) a seed first'),
    ('dormant', lambda s: s.cull('x', 0), InvalidTransitionError, 'cannot move from DORMANT to CULLED'),
    ('dormant', lambda s: s.germinate('resnet', 0), ValueError, "unknown blueprint 'resnet'"),
    ('dormant', lambda s: s(torch.zeros(1, 3, 2, 2, dtype=torch.float64)), ValueError, 'expected 4 channels'),
    ('training', lambda s: s.germinate('norm', 0), InvalidTransitionError, 'cannot move from TRAINING to GERMINATED'),
    ('training', lambda s: s(torch.zeros(1, 5, 2, 2, dtype=torch.float64)), ValueError, 'expected 4 channels'),
    ('training', lambda s: s.load_state({**SeedSlot(0, 8).state()}), ValueError, 'state is for 8 channels'),
    ('training', lambda s: s.override_alpha(1.5).__enter__(), ValueError, 'alpha must be in \\[0, 1\\]'),
    ('fossil', lambda s: s.advance(0), SlotOperationError, 'cannot advance\\(\\) in stage FOSSILIZED'),
    ('fossil', lambda s: s.cull('x', 0), InvalidTransitionError, 'none \\(terminal\\)'),
    ('embargo', lambda s: s.advance(0), SlotOperationError, 'stage EMBARGOED'),
    ('embargo', lambda s: s.germinate('norm', 0), InvalidTransitionError, 'cannot move from EMBARGOED to GERMINATED'),
])
def test_impossible_requests_raise_and_leave_slot_unchanged(setup, call, err, msg):
    s, hub = slot_with()
    if setup != 'dormant': s.germinate('conv_enhance', 0)
    if setup in ('training', 'fossil'): to_stage(s, S.TRAINING if setup == 'training' else S.FOSSILIZED)
    if setup == 'embargo': s.cull('bad', 0)
    snap, n_events = snapshot(s), len(hub.events)
    with pytest.raises(err, match=msg): call(s)
    assert unchanged(s, snap) and len(hub.events) == n_events


# ---------------------------------------------------------------- cull, embargo, optimizer
def train_steps(m, opt, x, y, n=2):
    for _ in range(n): opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()


def test_culled_seed_is_gone_from_model_and_optimizer_and_slot_is_reused():
    hub = ListHub()
    m = make('conv_enhance', S.BLENDING, hub=hub)
    x, y = batch()
    opt = MorphoOptimizer(m, lr=0.05, seed_lr=0.1)
    train_steps(m, opt, x, y)
    seed_params = {id(p) for p in m.seed_parameters(0)}
    assert seed_params and seed_params <= {id(p) for p in opt.optimizer.state}
    rep = m.slots[0].cull('harmful', 3)
    opt.sync()
    assert rep.outcome == S.CULLED and rep.reason == 'harmful' and m.slots[0].stage == S.EMBARGOED
    assert not seed_params & {id(p) for p in m.parameters()}
    assert not seed_params & {id(p) for g in opt.param_groups for p in g['params']}
    assert not seed_params & {id(p) for p in opt.optimizer.state}
    assert [g['name'] for g in opt.param_groups] == ['host'] and m.param_count() == m.host_param_count()
    assert torch.equal(m(x), m.host(x))
    m.slots[0].step_epoch(3); assert m.slots[0].stage == S.EMBARGOED
    m.slots[0].step_epoch(4); assert m.slots[0].stage == S.DORMANT
    stages = [e.data['to'] for e in hub.events if 'to' in e.data][-4:]  # one event per transition, whatever its type
    assert stages == ['CULLED', 'EMBARGOED', 'RESETTING', 'DORMANT']
    assert m.slots[0].germinate('attention', 5).passed and m.slots[0].seed_id.endswith('-2')
    train_steps(m, opt, x, y, 1)
    assert [(g['name'], g['seed_id']) for g in opt.param_groups] == [('host', None), ('seed0', m.slots[0].seed_id)]


@pytest.mark.parametrize('bp', PARAM_BPS)
def test_fossilization_carries_seed_momentum_into_host_group(bp):
    m = make(bp, S.PROBATIONARY)
    x, y = batch()
    lr, seed_lr, mom, wd = 0.05, 0.2, 0.9, 5e-4
    opt = MorphoOptimizer(m, lr=lr, seed_lr=seed_lr, momentum=mom, weight_decay=wd)
    train_steps(m, opt, x, y, 2)
    params = m.seed_parameters(0)
    bufs = [opt.optimizer.state[p]['momentum_buffer'].clone() for p in params]
    m.slots[0].record_contribution(0.6, 0.5); assert m.slots[0].advance(2).passed
    opt.zero_grad(); F.cross_entropy(m(x), y).backward()
    grads, before = [p.grad.clone() for p in params], [p.detach().clone() for p in params]
    opt.step()
    host = opt.group('host')
    assert [g['name'] for g in opt.param_groups] == ['host'] and all(any(p is q for q in host['params']) for p in params)
    for p, b, g, p0 in zip(params, bufs, grads, before):   # nesterov SGD with the carried buffer, at the host lr
        d = g + wd * p0
        b_new = mom * b + d
        assert torch.allclose(p.detach(), p0 - lr * (d + mom * b_new), rtol=0, atol=1e-15)
        assert torch.allclose(opt.optimizer.state[p]['momentum_buffer'], b_new, rtol=0, atol=1e-15)


def test_seed_groups_lr_and_which_seeds_train():
    m = make('norm', S.GERMINATED, slots_after=(0, 1))
    m.slots[1].germinate('depthwise', 0); to_stage(m.slots[1], S.BLENDING)
    x, y = batch()
    opt = MorphoOptimizer(m, lr=0.1, seed_lr=0.01)
    opt.set_lr(0.02, 0.3)
    assert [(g['name'], g['lr']) for g in opt.param_groups] == [('host', 0.02), ('seed0', 0.3), ('seed1', 0.3)]
    germ = [p.detach().clone() for p in m.seed_parameters(0)]
    train_steps(m, opt, x, y, 1)
    assert all(torch.equal(a, p) for a, p in zip(germ, m.seed_parameters(0)))  # GERMINATED: not in the forward, no decay
    assert all(p.grad is None for p in m.seed_parameters(0))


# ---------------------------------------------------------------- counterfactual contribution
def test_measure_contributions_is_counterfactual_and_restores_state():
    m = make('conv_enhance', S.BLENDING, slots_after=(0, 1))
    x, y = batch(n=32)
    m.train()
    alpha = m.slots[0].alpha
    res = m.measure_contributions(x, y)
    m.eval()
    with torch.no_grad():
        with m.slots[0].override_alpha(1.): live = (m(x).argmax(1) == y).double().mean().item()
        with m.slots[0].override_alpha(0.): off = (m.host(x).argmax(1) == y).double().mean().item()
    assert res[1] is None and math.isclose(res[0], live - off, abs_tol=1e-12)
    assert m.slots[0].metrics.contribution == res[0] and m.slots[0].alpha == alpha and m.slots[0]._override is None


# ---------------------------------------------------------------- export and checkpoints
@pytest.mark.parametrize('bp', BPS)
def test_export_round_trip_identical_outputs(bp):
    m = make(bp, S.FOSSILIZED, slots_after=(0, 2))
    m.slots[1].germinate('conv_enhance', 0); to_stage(m.slots[1], S.SHADOWING)   # live seeds are not exported
    x, _ = batch()
    net, spec = m.export()
    buf = io.BytesIO(); torch.save(net.state_dict(), buf); buf.seek(0)
    net2 = load_export(json.loads(json.dumps(spec, allow_nan=False)), torch.load(buf, weights_only=True))
    m.eval(); net2.eval()
    with torch.no_grad(), m.slots[1].override_alpha(0.):
        assert torch.equal(net2(x), m(x))
    n = sum(p.numel() for p in net2.parameters())
    assert n == m.host_param_count() + get_blueprint(bp).param_count(4) == spec['params']
    assert type(net2) is GrownCNN and not any(isinstance(mod, SeedSlot) for mod in net2.modules())


def test_checkpoint_resume_reproduces_training_exactly():
    x, y = batch(n=16)
    def run(stop_at=None):
        m = make('conv_enhance', S.TRAINING, slots_after=(0, 1), perturb=False)
        opt = MorphoOptimizer(m, lr=0.05, seed_lr=0.2)
        for epoch in range(8):
            if epoch == stop_at:
                buf = io.BytesIO()
                torch.save({'model': m.state_dict(), 'slots': m.slot_states(), 'opt': opt.state_dict()}, buf); buf.seek(0)
                ck = torch.load(buf, weights_only=True)
                torch.manual_seed(123)
                m = MorphogeneticModel(HostCNN(1, 5, widths=(4, 8, 8), slots_after=(0, 1), input_hw=12), OPEN).double()
                m.load_slot_states(ck['slots']); m.load_state_dict(ck['model'])
                opt = MorphoOptimizer(m, lr=0.05, seed_lr=0.2); opt.load_state_dict(ck['opt'])
            train_steps(m, opt, x, y, 2)
            for s in m.slots: s.step_epoch(epoch)
            s0 = m.slots[0]
            if epoch == 1: m.slots[1].germinate('attention', epoch)
            if s0.stage == S.TRAINING or s0.stage == S.BLENDING: s0.advance(epoch)
            elif s0.stage in (S.SHADOWING, S.PROBATIONARY): m.measure_contributions(x, y); s0.advance(epoch)
            if epoch == 4: m.slots[1].cull('test', epoch)
        return m, opt
    (a, oa), (b, ob) = run(), run(stop_at=3)
    assert a.slots[0].stage == S.FOSSILIZED and a.slot_states() == b.slot_states()
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [g['name'] for g in oa.param_groups] == [g['name'] for g in ob.param_groups] == ['host']


def test_optimizer_load_refuses_mismatched_slots():
    m = make('norm', S.TRAINING)
    sd = MorphoOptimizer(m, 0.1, 0.1).state_dict()
    fresh = MorphogeneticModel(HostCNN(1, 5, widths=(4, 8, 8), slots_after=(1,), input_hw=12), OPEN).double()
    with pytest.raises(ValueError, match='call model.load_slot_states first'): MorphoOptimizer(fresh, 0.1, 0.1).load_state_dict(sd)


def test_slot_state_is_strict_json_and_round_trips():
    m = make('depthwise', S.SHADOWING)
    st_ = m.slots[0].state()
    s2 = SeedSlot(0, 8, OPEN).double(); s2.load_state(json.loads(json.dumps(st_, allow_nan=False)))
    assert s2.state() == st_ and s2.seed is not None
