"End-to-end tests of the trainer: every policy, determinism, resume, NaN recovery, checkpoint safety."
import json, math, os, signal
from pathlib import Path
import pytest, torch
from esper.contracts.stages import SeedStage
from esper.contracts.schemas import TelemetryEventType as ET
from esper.config import RunConfig
from esper.trainer import Trainer
from esper.run import run, resume, load_run_checkpoint
from esper.tamiyo.baselines import make_policy
from esper.nissa.output import NissaHub, MemoryBackend

TINY = RunConfig.preset('tiny')

def strip_time(history):
    "History without wall times, NaN (no contribution measured) as None so == compares it."
    nan = lambda v: None if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan(v) for k, v in h.items() if not k.startswith('time/')} for h in history]

@pytest.mark.parametrize('name', ['heuristic', 'static', 'periodic', 'random'])
def test_tiny_run_per_policy(name, tmp_path):
    kw = {'random': {'seed': 3}, 'heuristic': {'blending_epochs': 1}}.get(name, {})  # tiny: 6 epochs, 1-epoch gates
    res = run(TINY, make_policy(name, n_slots=1, **kw), runs_root=tmp_path)
    assert len(res.history) == TINY.epochs and 0 <= res.test_acc <= 1
    run_dir = Path(res.run_dir)
    assert run_dir.name.startswith(f'synthetic__{name}__0__')
    for f in ('config.json', 'meta.json', 'result.json', 'checkpoint.pt', 'grown_model.pt', 'grown_model.json', 'lifecycle.png', 'curves.png', 'events.jsonl'):
        assert (run_dir / f).exists(), f
    assert json.loads((run_dir / 'meta.json').read_text())['git_sha']
    if name == 'static': assert res.params == res.host_params and res.fossils == 0
    if name in ('periodic', 'heuristic'): assert res.fossils + res.culls >= 1

def test_exported_model_matches_reported_accuracy(tmp_path):
    "The grown model written to disk is the model whose test accuracy is reported."
    from esper.kasmina.host import load_export
    from esper.data import load_dataset
    res = run(TINY, make_policy('periodic', every=1), runs_root=tmp_path)
    d = Path(res.run_dir)
    model = load_export(json.loads((d / 'grown_model.json').read_text()), torch.load(d / 'grown_model.pt', weights_only=True)).eval()
    data = load_dataset(TINY.dataset, seed=TINY.seed, val_size=TINY.val_size, limit=TINY.data_limit)
    with torch.no_grad(): acc = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert acc == pytest.approx(res.test_acc, abs=1e-6)
    assert sum(p.numel() for p in model.parameters()) == res.params

def test_same_seed_same_history():
    a = run(TINY, make_policy('random', seed=1), NissaHub([MemoryBackend()]), save=False)
    b = run(TINY, make_policy('random', seed=1), NissaHub([MemoryBackend()]), save=False)
    c = run(RunConfig.preset('tiny', seed=1), make_policy('random', seed=1), NissaHub([MemoryBackend()]), save=False)
    assert strip_time(a.history) == strip_time(b.history)
    assert strip_time(a.history) != strip_time(c.history)

class InterruptAfter:
    "Wraps a policy and sends SIGINT to this process after `k` decisions, like a user's Ctrl-C."
    def __init__(self, policy, k): self.policy, self.k, self.n, self.name = policy, k, 0, policy.name
    def reset(self): self.policy.reset()
    def state_dict(self): return self.policy.state_dict()
    def load_state_dict(self, d): self.policy.load_state_dict(d)
    def decide(self, signals, mask):
        self.n += 1
        if self.n == self.k: os.kill(os.getpid(), signal.SIGINT)
        return self.policy.decide(signals, mask)

def test_resume_equals_uninterrupted(tmp_path):
    full = run(TINY, make_policy('random', seed=5), runs_root=tmp_path / 'a')
    part = run(TINY, InterruptAfter(make_policy('random', seed=5), 3), runs_root=tmp_path / 'b')
    assert part.interrupted and len(part.history) == 2  # the third epoch was stopped mid-way and is redone
    resumed = resume(part.run_dir, make_policy('random', seed=5))
    assert strip_time(resumed.history) == strip_time(full.history)
    assert resumed.test_acc == full.test_acc
    assert [r['history'] for r in resumed.field_reports] == [r['history'] for r in full.field_reports]

def test_nan_in_a_seed_culls_it_and_restores_the_host():
    hub = NissaHub([MemoryBackend()])
    tr = Trainer(TINY, hub); tr.reset()
    tr.step(1); tr.step(5)  # germinate, then TRAINING
    assert tr.model.slots[0].stage == SeedStage.TRAINING
    with torch.no_grad():
        for p in tr.model.slots[0].seed.parameters(): p.fill_(float('nan'))
    tr.step(0)
    assert tr.model.slots[0].stage in (SeedStage.EMBARGOED, SeedStage.RESETTING, SeedStage.DORMANT)
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert any(e.type == ET.NAN_DETECTED for e in hub.memory.events)
    assert math.isfinite(tr.history[-1]['val/loss'])

def test_host_divergence_without_a_seed_is_a_clear_error():
    tr = Trainer(TINY); tr.reset()
    with torch.no_grad():
        for p in tr.model.host.parameters(): p.fill_(float('nan'))
    with pytest.raises(FloatingPointError, match='no live seed to blame'): tr.step(0)

def test_tampered_checkpoint_is_refused(tmp_path):
    res = run(TINY, make_policy('static'), runs_root=tmp_path)
    ck = load_run_checkpoint(res.run_dir).state
    class Evil:
        def __reduce__(self): return (os.system, ('touch ' + str(tmp_path / 'pwned'),))
    ck['history'] = Evil()
    torch.save(ck, Path(res.run_dir) / 'checkpoint.pt')
    with pytest.raises(ValueError, match='refusing run checkpoint'): load_run_checkpoint(res.run_dir)
    assert not (tmp_path / 'pwned').exists()

# ---------------------------------------------------------------- one source for every fact

def test_g2_refuses_a_seed_whose_live_loss_is_not_finite():
    "In a real run the counterfactual pass records the seed's loss as if live, so G2's loss check can fail."
    tr = Trainer(TINY, NissaHub([MemoryBackend()])); tr.reset()
    tr.step(1); tr.step(5)                              # germinate, then TRAINING
    s = tr.model.slots[0]
    assert s.stage == SeedStage.TRAINING and math.isfinite(s.metrics.train_loss)
    with torch.no_grad(): s.seed.f[1].running_mean.fill_(float('nan'))  # eval-mode output NaN; training (batch stats) fine
    tr.step(0)
    assert math.isnan(s.metrics.train_loss)
    r = tr.step(5)                                      # ask to blend
    assert s.stage == SeedStage.TRAINING and 'loss_finite' in r.gate
    assert any(e.type == ET.GATE_FAILED and 'loss_finite' in e.data['failed'] for e in tr.hub.memory.events)

def test_events_hold_one_event_per_slot_transition(tmp_path):
    from esper.nissa.output import read_jsonl
    res = run(TINY, make_policy('periodic', every=1), runs_root=tmp_path)
    ev = [e for e in read_jsonl(Path(res.run_dir) / 'events.jsonl') if e['type'].startswith('seed_')]
    assert ev and all('from' in e['data'] and 'to' in e['data'] for e in ev)
    for slot in {e['slot'] for e in ev}:  # per slot the transitions chain: each starts where the last one ended
        chain = [(e['data']['from'], e['data']['to']) for e in ev if e['slot'] == slot]
        assert chain[0][0] == 'DORMANT' and all(a[1] == b[0] for a, b in zip(chain, chain[1:])), chain
    assert len({(e['epoch'], e['slot'], e['data']['from'], e['data']['to']) for e in ev}) == len(ev)

def test_custom_telemetry_reaches_the_diagnostics():
    from esper.nissa.config import TelemetryConfig
    tel = TelemetryConfig.from_profile('standard', grad_every=0, per_class=False, console=False, wandb_mode='disabled')
    res = run(TINY, make_policy('static'), NissaHub([MemoryBackend()]), save=False, telemetry=tel)
    assert not [k for h in res.history for k in h if k.startswith('grad/') or k.startswith('val/class')]

def test_isolation_monitor_reports_a_broken_incubator(monkeypatch):
    "Diagnostic profile: a seed fed host features that are still attached to the graph is an ISOLATION_VIOLATION."
    import esper.kasmina.slot as slot_mod
    monkeypatch.setattr(slot_mod, 'incubator_forward', lambda h, seed: h + 0 * seed(h))  # leaks the host graph into the seed
    tr = Trainer(RunConfig.preset('tiny', telemetry='diagnostic'), NissaHub([MemoryBackend()])); tr.reset()
    tr.step(1); tr.step(5); tr.step(0)
    assert any(e.type == ET.ISOLATION_VIOLATION for e in tr.hub.memory.events)
