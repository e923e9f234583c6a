"Cheaper decisions: one validation pass shares the features before each slot with the counterfactual passes, with identical numbers."
import torch
from esper.contracts.stages import SeedStage as S
from esper.config import RunConfig
from esper.trainer import Trainer
from test_kasmina import make, batch, BPS
import pytest

@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('stage', [S.TRAINING, S.BLENDING, S.PROBATIONARY])
def test_one_pass_contributions_equal_three_passes_float64(bp, stage):
    a, b = make(bp, stage), make(bp, stage)
    x, y = batch(n=16)
    assert a.measure_contributions(x, y, one_pass=True) == b.measure_contributions(x, y, one_pass=False)
    sa, sb = a.slots[0].metrics, b.slots[0].metrics
    assert (sa.contribution, sa.val_acc_live, sa.val_acc_bypassed) == (sb.contribution, sb.val_acc_live, sb.val_acc_bypassed)
    assert sa.train_loss == sb.train_loss or (sa.train_loss != sa.train_loss and sb.train_loss != sb.train_loss)

def _history(one_pass, preset='tiny', **kw):
    tr = Trainer(RunConfig.preset(preset, slots_after=(0, 1), **kw)); tr.one_pass = one_pass; tr.reset()
    for a in (1, 5, 5, 5, 5, 5): tr.step(a, strict=False)
    return tr, [{k: v for k, v in h.items() if not k.startswith('time/') and k != 'model/eval_flops'} for h in tr.history]

@pytest.mark.parametrize('cb', [256, 100])  # the first validation chunk itself, or a smaller batch measured on its own
def test_one_pass_run_equals_three_pass_run(cb):
    (ta, a), (tb, b) = _history(True, contribution_batch=cb), _history(False, contribution_batch=cb)
    nan = lambda h: {k: (None if v != v else v) for k, v in h.items()}
    assert [nan(h) for h in a] == [nan(h) for h in b]
    assert ta.eval_flops < tb.eval_flops      # the shared prefix is not paid twice


# ---------------------------------------------------------------- the paired baseline
import json, multiprocessing as mp
from esper.run import run
from esper.tamiyo.baselines import make_policy
from esper.nissa.output import NissaHub, MemoryBackend
from esper.simic.env import static_baseline, MorphogeneticEnv
from esper.simic.rewards import RewardConfig

TINY3 = RunConfig.preset('tiny', epochs=3)

def test_cached_baseline_equals_a_fresh_static_run(tmp_path):
    b = static_baseline(TINY3, 5, root=tmp_path)
    cached = static_baseline(TINY3, 5, root=tmp_path)
    from dataclasses import replace
    twin = Trainer(replace(TINY3, seed=5), data=Trainer(TINY3).data)   # run seed 5 on the split of TINY3's own seed, as the env plays it
    res = run(twin.config, make_policy('static'), NissaHub([MemoryBackend()]), save=False, trainer=twin)
    assert cached == b and b[1:] == [h['val/acc'] for h in res.history]

@pytest.mark.parametrize('content', [b'\x00\x01 not json', b'{"format": "esper.static_baseline/1", "seed": 6, "val_acc": [0.1, 0.2, 0.3, 0.4]}',
                                     b'{"format": "esper.static_baseline/1", "seed": 5, "val_acc": [0.1, NaN, 0.3, 0.4]}'])
def test_a_corrupt_baseline_entry_is_refused_and_recomputed(tmp_path, content):
    b = static_baseline(TINY3, 5, root=tmp_path)
    f = next(tmp_path.rglob('5.json')); f.write_bytes(content)
    assert static_baseline(TINY3, 5, root=tmp_path) == b
    assert json.loads(f.read_text())['val_acc'] == b

def _fill(root): static_baseline(TINY3, 9, root=root)

def test_two_processes_filling_the_cache_leave_a_valid_file(tmp_path):
    ctx = mp.get_context('spawn')
    ps = [ctx.Process(target=_fill, args=(str(tmp_path),)) for _ in range(2)]
    for p in ps: p.start()
    for p in ps: p.join(120)
    assert all(p.exitcode == 0 for p in ps)
    files = [f for f in tmp_path.rglob('*') if f.is_file()]
    assert [f.name for f in files] == ['9.json']                         # whole, and no temporary file left behind
    assert json.loads(files[0].read_text())['val_acc'] == static_baseline(TINY3, 9, root=tmp_path)

def test_paired_reward_telescopes_to_final_minus_twin(tmp_path):
    env = MorphogeneticEnv('tiny', reward_config=RewardConfig(baseline='static'), baseline_cache=tmp_path, seed_pool=3, time_limit='terminate')
    _, info = env.reset(seed=1); acc, done = 0., False
    while not done:
        _, _, term, trunc, info = env.step(1 if info['action_mask'][1] else 0)
        acc += info['reward_components']['acc_gain']; done = term or trunc
    assert abs(acc - 100 * (env.signals.val_acc - env.baseline[-1])) < 1e-9 and info['run_seed'] < 3
    with pytest.raises(ValueError, match='seed_pool'): MorphogeneticEnv('tiny', seed_pool=0)
