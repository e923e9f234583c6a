"Tamiyo policies and the signal tracker: masks are always respected, tracker memory, state round trips."
import json, math, os
import pytest
from hypothesis import given, settings, strategies as st
os.environ.setdefault('WANDB_MODE', 'offline')
from esper.contracts.stages import SeedStage
from esper.contracts.actions import BLUEPRINTS, ActionOp, Decision, action_mask, decode_action, n_actions
from esper.contracts.signals import EpochMetrics, SlotSignals, TrainingSignals
from esper.contracts.schemas import TamiyoPolicy
from esper.tamiyo.tracker import SignalTracker, lstsq_slope
from esper.tamiyo.heuristic import HeuristicConfig, HeuristicTamiyo
from esper.tamiyo.baselines import POLICIES, StaticPolicy, PeriodicPolicy, RandomPolicy, make_policy

# --- random signals and masks -----------------------------------------------------------------

fracs = st.floats(-0.2, 1.0, allow_nan=False)
slot_signals = st.builds(SlotSignals, stage=st.sampled_from(list(SeedStage)), alpha=st.floats(0, 1),
                         contribution=st.floats(-0.5, 0.5, allow_nan=False), epochs_in_stage=st.integers(0, 30),
                         param_frac=st.floats(0, 3), blueprint=st.sampled_from([None, *BLUEPRINTS]))

@st.composite
def signals_and_mask(draw, n_slots=None):
    S = draw(st.integers(1, 3)) if n_slots is None else n_slots
    max_epochs = draw(st.integers(1, 40))
    sig = TrainingSignals(epoch=draw(st.integers(0, max_epochs)), max_epochs=max_epochs, val_acc=draw(fracs),
                          best_val_acc=draw(fracs), plateau_epochs=draw(st.integers(0, 20)),
                          since_germination=draw(st.none() | st.integers(0, 20)), slots=tuple(draw(slot_signals) for _ in range(S)))
    kind = draw(st.sampled_from(['random', 'structural']))
    if kind == 'structural': mask = action_mask(sig.stages)
    else: mask = [True] + [draw(st.booleans()) for _ in range(n_actions(S) - 1)]  # WAIT always valid
    return sig, mask

def _policies(S):
    return [HeuristicTamiyo(n_slots=S), HeuristicTamiyo(HeuristicConfig(germinate_at_epoch=0, plateau_epochs=0, cooldown_epochs=0,
                                                                         late_fraction=1.0, max_active_seeds=3), n_slots=S),
            StaticPolicy(), PeriodicPolicy(every=1, n_slots=S), PeriodicPolicy(every=2, blueprint='depthwise', n_slots=S),
            RandomPolicy(seed=S)]

@settings(max_examples=300, deadline=None)
@given(st.lists(signals_and_mask(n_slots=2), min_size=1, max_size=8), st.integers(1, 3))
def test_no_policy_ever_returns_a_masked_action(seq, _):
    "Feed each policy a random sequence of epochs (so its memory is exercised too); every action must be allowed."
    for pol in _policies(2):
        for sig, mask in seq:
            d = pol.decide(sig, mask)
            assert isinstance(d, Decision) and mask[d.action], (pol.name, d, mask)
            assert 0 <= d.confidence <= 1 and d.reason

@settings(max_examples=200, deadline=None)
@given(signals_and_mask())
def test_masked_action_safety_for_any_slot_count(sm):
    sig, mask = sm
    for pol in _policies(sig.n_slots):
        assert mask[pol.decide(sig, mask).action]

@settings(max_examples=100, deadline=None)
@given(signals_and_mask(n_slots=1))
def test_heuristic_only_wait_when_everything_else_is_masked(sm):
    sig, _ = sm
    only_wait = [True] + [False] * (n_actions(1) - 1)
    for pol in _policies(1): assert pol.decide(sig, only_wait).action == 0

def test_all_policies_follow_the_protocol_and_have_names():
    for name in POLICIES:
        p = make_policy(name, n_slots=2)
        assert isinstance(p, TamiyoPolicy) and p.name == name
    with pytest.raises(ValueError, match='expected one of heuristic, static, periodic, random'): make_policy('oracle')

# --- heuristic behaviour -----------------------------------------------------------------------

def _run(pol, stages_by_epoch, max_epochs=20, **kw):
    out = []
    for e, slot in enumerate(stages_by_epoch):
        sig = TrainingSignals(epoch=e, max_epochs=max_epochs, slots=(slot,), **kw)
        out.append(decode_action(pol.decide(sig, action_mask(sig.stages)).action, 1))
    return out

def test_heuristic_tie_breaking_cull_beats_advance():
    s = SlotSignals(SeedStage.PROBATIONARY, contribution=-0.1, epochs_in_stage=5, blueprint='norm')
    sig = TrainingSignals(epoch=3, max_epochs=10, plateau_epochs=9, slots=(s, SlotSignals()))
    pol = HeuristicTamiyo(HeuristicConfig(max_active_seeds=2), n_slots=2)
    assert decode_action(pol.decide(sig, action_mask(sig.stages)).action, 2) == (ActionOp.CULL, 0, None)

def test_heuristic_skips_a_culled_blueprint_for_the_penalty_window():
    pol = HeuristicTamiyo(HeuristicConfig(blueprints=('attention', 'norm'), cull_penalty_epochs=10, cooldown_epochs=0))
    live = SlotSignals(SeedStage.BLENDING, contribution=0.01, epochs_in_stage=0, blueprint='attention')
    culled = SlotSignals(SeedStage.EMBARGOED)  # culled by someone else (e.g. the trainer), blueprint no longer shown
    norm = SlotSignals(SeedStage.GERMINATED, epochs_in_stage=0, blueprint='norm')
    acts = _run(pol, [SlotSignals(), live, culled, SlotSignals(), norm, SlotSignals()], plateau_epochs=3)
    assert acts[0] == (ActionOp.GERMINATE, 0, 'attention') and acts[1].op == ActionOp.WAIT and acts[2].op == ActionOp.WAIT
    assert acts[3] == (ActionOp.GERMINATE, 0, 'norm') and acts[4].op == ActionOp.ADVANCE
    assert acts[5] == (ActionOp.GERMINATE, 0, 'norm')  # rotation says attention, but it is under penalty
    assert pol.penalty == {'attention': 12}

def test_heuristic_never_germinates_late_or_above_the_seed_cap():
    pol = HeuristicTamiyo(HeuristicConfig(late_fraction=0.5))
    sig = TrainingSignals(epoch=5, max_epochs=10, plateau_epochs=10, slots=(SlotSignals(),))
    assert pol.decide(sig, action_mask(sig.stages)).action == 0
    pol2 = HeuristicTamiyo(n_slots=2)  # max_active_seeds = 1
    sig2 = TrainingSignals(epoch=2, max_epochs=10, plateau_epochs=10, since_germination=2,
                           slots=(SlotSignals(SeedStage.TRAINING, epochs_in_stage=0), SlotSignals()))
    assert pol2.decide(sig2, action_mask(sig2.stages)).action == 0

def test_heuristic_state_round_trip_continues_identically():
    a = HeuristicTamiyo(n_slots=1)
    seq = [SlotSignals(), SlotSignals(SeedStage.SHADOWING, contribution=-0.05, epochs_in_stage=1, blueprint='conv_enhance'),
           SlotSignals(SeedStage.EMBARGOED), SlotSignals()]
    _run(a, seq[:2])
    b = HeuristicTamiyo(n_slots=1); b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    rest_a, rest_b = _run(a, seq, plateau_epochs=5, since_germination=4), _run(b, seq, plateau_epochs=5, since_germination=4)
    assert rest_a == rest_b and a.state_dict() == b.state_dict()
    a.reset(); assert a.state_dict() == HeuristicTamiyo().state_dict()

def test_random_policy_is_reproducible_and_round_trips():
    sig, mask = TrainingSignals(), action_mask([SeedStage.DORMANT])
    a, b = RandomPolicy(seed=4), RandomPolicy(seed=4)
    xs = [a.decide(sig, mask).action for _ in range(30)]
    assert xs == [b.decide(sig, mask).action for _ in range(30)] and len(set(xs)) > 2
    c = RandomPolicy(); c.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.decide(sig, mask).action for _ in range(10)] == [c.decide(sig, mask).action for _ in range(10)]

# --- tracker on hand-made sequences ---------------------------------------------------------------

def _em(a, l, lr): return EpochMetrics(train_loss=l, train_acc=a, val_loss=l, val_acc=a, lr=lr)

def _feed(tr, accs, losses=None, germ_at=()):
    losses = losses or [1 - a for a in accs]
    return [tr.update(e, _em(a, l, tr.peak_lr), (SlotSignals(),) * tr.n_slots,
                      n_fossilized=0, n_culled=0, n_active=0, germinated=e in germ_at) for e, (a, l) in enumerate(zip(accs, losses))]

def test_tracker_plateau_best_and_deltas():
    sig = _feed(SignalTracker(1, 20, 0.1, min_delta=0.01), [0.5, 0.6, 0.605, 0.59, 0.61, 0.62, 0.55, 0.7])
    assert [s.plateau_epochs for s in sig] == [0, 0, 1, 2, 3, 0, 1, 0]
    assert [s.best_val_acc for s in sig] == [0.5, 0.6, 0.605, 0.605, 0.61, 0.62, 0.62, 0.7]
    assert math.isclose(sig[3].val_acc_delta, -0.015) and math.isclose(sig[3].val_loss_delta, 0.015)
    assert sig[0].val_acc_delta == 0 and sig[0].val_loss_delta == 0

def test_tracker_trend_is_the_slope_of_the_last_five():
    accs = [0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6]
    sig = _feed(SignalTracker(1, 20, 0.1), accs)
    assert math.isclose(sig[-1].val_acc_trend, 0.1)            # the 0.9 outlier has left the window
    assert math.isclose(sig[2].val_acc_trend, lstsq_slope(accs[:3]))
    assert math.isclose(lstsq_slope([1, 3, 2, 4]), 0.8)          # by hand: (−1.5·−1.5 − .5·.5 + .5·−.5 + 1.5·1.5) / 5

def test_tracker_since_germination_and_defaults():
    sig = _feed(SignalTracker(2, 10, 0.05), [0.5] * 6, germ_at=(2,))
    assert [s.since_germination for s in sig] == [None, None, 0, 1, 2, 3]
    s = sig[0]
    assert (s.lr, s.grad_norm, s.grad_health, s.param_ratio, s.flops_ratio, s.worst_class_acc) == (0.05, 1., 1., 1., 1., 0.5)
    assert len(s.to_tensor()) == 21 + 6 * 2

def test_tracker_rejects_bad_input():
    tr = SignalTracker(1, 10, 0.1)
    with pytest.raises(TypeError, match='val_acc'): EpochMetrics(train_loss=1, train_acc=.1, val_loss=1, lr=.1)
    with pytest.raises(TypeError, match='metrics must be an EpochMetrics record, got dict'):
        tr.update(0, {'train/loss': 1, 'train/acc': .1, 'val/loss': 1, 'val/acc': .1}, (SlotSignals(),), n_fossilized=0, n_culled=0, n_active=0, germinated=False)
    with pytest.raises(ValueError, match='expected 1 slot signals, got 2'):
        tr.update(0, _em(.1, 1, .1), (SlotSignals(),) * 2,
                  n_fossilized=0, n_culled=0, n_active=0, germinated=False)

@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=15), st.integers(0, 14))
def test_tracker_resume_matches_an_uninterrupted_run(accs, cut):
    cut = min(cut, len(accs))
    whole = _feed(SignalTracker(1, 30, 0.1), accs, germ_at=(1,))
    first = SignalTracker(1, 30, 0.1); _feed(first, accs[:cut], germ_at=(1,))
    resumed = SignalTracker(1, 30, 0.1); resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    rest = [resumed.update(e, _em(a, 1 - a, 0.1), (SlotSignals(),),
                           n_fossilized=0, n_culled=0, n_active=0, germinated=e == 1) for e, a in enumerate(accs) if e >= cut]
    assert rest == whole[cut:]
