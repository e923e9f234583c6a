"Offline RL: episode files (round trip, refusal of bad files, interrupted generation) and IQL (losses, masking, checkpoints)."
import json, math, os, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from esper.simic.episodes import (EpisodeRecorder, EpisodeWriter, EpsilonGreedy, ToyMaskedEnv, UniformRandom, collect_episodes,
                                  config_hash, episode_files, load_episodes)
from esper.simic.iql import (IQLConfig, IQLPolicy, awr_weights, cql_penalty, expectile_loss, mlp, q_backup, train_iql)
from esper.contracts.signals import TrainingSignals
from esper.simic.features import obs_from_signals

os.environ.setdefault('WANDB_MODE', 'offline')
ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)

def target(obs, mask, rng): return int(obs[1:].argmax())

def toy_dir(path, n=6, seed=0, eps=0.5):
    rets = collect_episodes(ToyMaskedEnv(), EpsilonGreedy(target, eps, seed=seed), n, EpisodeWriter(path, 5, 4), seed=seed,
                            config_hash=config_hash({'task': 'toy'}))
    return rets

# ---------------------------------------------------------------- episodes: round trip

def test_round_trip_matches_what_was_recorded(tmp_path):
    rets = toy_dir(tmp_path, n=6)
    ds = load_episodes(tmp_path)
    assert ds.n_episodes == 6 and len(ds) == ds.episode_lengths.sum()
    np.testing.assert_allclose(ds.episode_returns, rets, rtol=1e-5)
    start = 0
    for f, T in zip(episode_files(tmp_path), ds.episode_lengths):
        with np.load(f, allow_pickle=False) as z:
            for key, t in (('obs', ds.obs), ('next_obs', ds.next_obs), ('actions', ds.actions), ('rewards', ds.rewards),
                           ('masks', ds.masks), ('next_masks', ds.next_masks)):
                np.testing.assert_array_equal(z[key], t[start:start + T].numpy())
            np.testing.assert_array_equal(z['terminated'], ds.terminals[start:start + T].numpy().astype(bool))
        start += T
    # each next_obs is the following obs within an episode
    ends = np.cumsum(ds.episode_lengths) - 1
    inner = np.setdiff1d(np.arange(len(ds) - 1), ends)
    np.testing.assert_array_equal(ds.next_obs[inner].numpy(), ds.obs[inner + 1].numpy())
    assert set(ds.behaviours) == {'target+eps0.5'} and set(ds.config_hashes) == {config_hash({'task': 'toy'})}
    meta = json.loads((tmp_path / 'meta.json').read_text())
    assert [e['file'] for e in meta['episodes']] == [f.name for f in episode_files(tmp_path)]

def test_reopening_appends(tmp_path):
    toy_dir(tmp_path, n=3, seed=0)
    toy_dir(tmp_path, n=2, seed=50)
    ds = load_episodes(tmp_path)
    assert ds.n_episodes == 5 and [f.name for f in episode_files(tmp_path)][-1] == 'ep_00004.npz'
    with pytest.raises(ValueError, match='cannot append obs_dim=7'): EpisodeWriter(tmp_path, 7, 4)

def test_truncation_is_not_terminal_on_cartpole(tmp_path):
    env = gym.make('CartPole-v1')  # a perfect controller runs to the 500-step time limit: truncated, not terminated
    rets = collect_episodes(env, lambda o, m, r: int(o[2] + 0.5 * o[3] > 0), 1, EpisodeWriter(tmp_path, 4, 2), seed=0)
    ds = load_episodes(tmp_path)
    assert rets == [500.0] and len(ds) == 500
    assert ds.terminals.sum() == 0 and bool(ds.truncated[-1]) and ds.truncated.sum() == 1
    # a falling pole is terminated
    collect_episodes(env, lambda o, m, r: 0, 1, EpisodeWriter(tmp_path, 4, 2), seed=1)
    ds = load_episodes(tmp_path)
    assert ds.terminals[-1] == 1 and ds.terminals.sum() == 1

def test_sample_is_reproducible(tmp_path):
    toy_dir(tmp_path)
    ds = load_episodes(tmp_path)
    a, b = ds.sample(64, torch.Generator().manual_seed(3)), ds.sample(64, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))

# ---------------------------------------------------------------- episodes: bad files are refused

def test_random_bytes_and_truncated_file_refused(tmp_path):
    toy_dir(tmp_path, n=3)
    f0, f1 = episode_files(tmp_path)[:2]
    data = f1.read_bytes()
    f1.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'ep_00001\.npz: not a readable \.npz file'): load_episodes(tmp_path)
    f1.write_bytes(data)
    f0.write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match=r'ep_00000\.npz: not a readable \.npz file'): load_episodes(tmp_path)

def test_pickled_npz_refused_without_running_it(tmp_path):
    toy_dir(tmp_path, n=2)
    f = episode_files(tmp_path)[1]
    with np.load(f, allow_pickle=False) as z: ep = {k: z[k] for k in z.files}
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self): return (marker.write_text, ('ran',))
    np.savez(f, **{**ep, 'policy': np.array([Evil()], dtype=object)})
    with pytest.raises(ValueError, match=r'ep_00001\.npz: holds an object \(pickled\) array'): load_episodes(tmp_path)
    assert not marker.exists()

def _rewrite(f, **changes):
    with np.load(f, allow_pickle=False) as z: ep = {k: z[k] for k in z.files}
    ep.update(changes)
    for k in [k for k, v in changes.items() if v is None]: del ep[k]
    np.savez(f, **ep)
    return ep

@pytest.mark.parametrize('change, message', [
    (lambda ep: {'obs': ep['obs'][:, :3]}, r'obs feature dimension \(\d+, 3\), expected \(\d+, 5\)'),
    (lambda ep: {'masks': ep['masks'][:, :2]}, r'masks mask shape \(\d+, 2\), expected \(\d+, 4\)'),
    (lambda ep: {'actions': np.full_like(ep['actions'], 9)}, r'action 9 out of range 0\.\.3'),
    (lambda ep: {'obs': np.where(np.arange(5) == 0, np.nan, ep['obs']).astype(np.float32)}, 'obs holds non-finite'),
    (lambda ep: {'rewards': None}, r'missing key\(s\) rewards'),
])
def test_malformed_episode_refused_with_one_line(tmp_path, change, message):
    toy_dir(tmp_path, n=2)
    f = episode_files(tmp_path)[0]
    with np.load(f, allow_pickle=False) as z: ep = {k: z[k] for k in z.files}
    _rewrite(f, **change(ep))
    with pytest.raises(ValueError, match=message) as e: load_episodes(tmp_path)
    assert str(e.value).startswith(str(f)) and '\n' not in str(e.value)

def test_missing_listed_file_and_missing_dir(tmp_path):
    toy_dir(tmp_path, n=3)
    episode_files(tmp_path)[1].unlink()
    with pytest.raises(ValueError, match='meta.json lists ep_00001.npz but the file is missing'): load_episodes(tmp_path)
    with pytest.raises(ValueError, match='no such episode directory'): load_episodes(tmp_path / 'nope')

# ---------------------------------------------------------------- episodes: interrupted generation

GENERATE = """
import sys, time
from esper.simic.episodes import EpisodeWriter, ToyMaskedEnv, UniformRandom, collect_episodes
class Slow(UniformRandom):
    def act(self, obs, mask, rng=None): time.sleep(0.01); return super().act(obs, mask)
collect_episodes(ToyMaskedEnv(length=20), Slow(0), 10_000, EpisodeWriter(sys.argv[1], 5, 4), seed=0)
"""

def test_sigkill_mid_generation_keeps_finished_episodes(tmp_path):
    out = tmp_path / 'eps'
    proc = subprocess.Popen([sys.executable, '-c', GENERATE, str(out)], cwd=ROOT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or len(episode_files(out)) < 4): time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside the next episode
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_files = len(episode_files(out))
    assert n_files >= 4
    ds = load_episodes(out)  # every finished episode loads, whatever state meta.json was in
    assert ds.n_episodes == n_files and (ds.episode_lengths >= 1).all()
    w = EpisodeWriter(out, 5, 4)  # reopening cleans temporary files and appends after the last episode
    assert not list(out.glob('*.tmp')) and w.next_index == n_files and w.n_episodes == n_files

def test_exception_in_behaviour_keeps_finished_episodes(tmp_path):
    class Crash(UniformRandom):
        def __init__(self): super().__init__(0); self.episodes = 0
        def reset(self): self.episodes += 1
        def act(self, obs, mask, rng=None):
            if self.episodes == 4 and obs[0] >= 0.5: raise RuntimeError('behaviour crashed mid-episode')
            return super().act(obs, mask)
    with pytest.raises(RuntimeError, match='crashed'):
        collect_episodes(ToyMaskedEnv(length=8), Crash(), 10, EpisodeWriter(tmp_path, 5, 4), seed=0)
    ds = load_episodes(tmp_path)
    assert ds.n_episodes == 3

def test_behaviours_never_pick_masked_actions():
    rng = np.random.default_rng(0)
    eg, ur = EpsilonGreedy(target, 0.7, seed=0), UniformRandom(0)
    for _ in range(500):
        mask = rng.random(6) < 0.4; mask[rng.integers(6)] = True
        obs = np.zeros(7); obs[1 + int(np.flatnonzero(mask)[0])] = 1
        assert mask[eg.act(obs, mask)] and mask[ur.act(obs, mask)]
    with pytest.raises(ValueError, match='no valid action'): ur.act(None, np.zeros(3, bool))

# ---------------------------------------------------------------- IQL: losses by hand

def test_expectile_loss_by_hand():
    u = torch.tensor([2., -1.])
    assert math.isclose(expectile_loss(u, 0.8).item(), (0.8 * 4 + 0.2 * 1) / 2, rel_tol=1e-6)
    assert math.isclose(expectile_loss(u, 0.5).item(), 0.5 * (4 + 1) / 2, rel_tol=1e-6)  # half the MSE
    assert math.isclose(expectile_loss(u, 0.2).item(), (0.2 * 4 + 0.8 * 1) / 2, rel_tol=1e-6)

def test_cql_penalty_by_hand():
    q = torch.tensor([[0., math.log(3.), 50.], [1., 1., 1.]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    a = torch.tensor([1, 2])
    # row 0: log(1 + 3) - log 3 = log(4/3); row 1: log(3e) - 1 = log 3
    assert math.isclose(cql_penalty(q, a, mask).item(), (math.log(4 / 3) + math.log(3)) / 2, rel_tol=1e-5)

def test_backup_and_weights_by_hand():
    assert q_backup(torch.tensor([1.]), torch.tensor([4.]), torch.tensor([0.]), 0.5).item() == 3.
    assert q_backup(torch.tensor([1.]), torch.tensor([4.]), torch.tensor([1.]), 0.5).item() == 1.
    w = awr_weights(torch.tensor([math.log(2.), 100.]), beta=1., max_weight=5.)
    assert torch.allclose(w, torch.tensor([2., 5.]))

# ---------------------------------------------------------------- IQL: training and the policy

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp('iql')
    collect_episodes(ToyMaskedEnv(), UniformRandom(0), 60, EpisodeWriter(d / 'eps', 5, 4), seed=0)
    ds = load_episodes(d / 'eps')
    res = train_iql(ds, replace(IQLConfig.preset('tiny'), cql_alpha=0.5), steps=150, seed=0, checkpoint_path=d / 'iql.pt')
    return ds, res, d / 'iql.pt'

def test_training_is_deterministic(trained):
    ds, res, _ = trained
    again = train_iql(ds, replace(IQLConfig.preset('tiny'), cql_alpha=0.5), steps=150, seed=0)
    strip = lambda h: [{k: v for k, v in x.items() if k != 'charts/updates_per_s'} for x in h]
    assert strip(again.history) == strip(res.history)
    assert all(math.isfinite(v) for x in res.history for v in x.values())

@settings(max_examples=200, deadline=None)
@given(obs=st.lists(st.floats(-5, 5), min_size=5, max_size=5), bits=st.integers(1, 15), greedy=st.booleans())
def test_iql_policy_never_picks_masked_action(trained, obs, bits, greedy):
    _, res, ckpt = trained
    mask = np.array([(bits >> i) & 1 for i in range(4)], bool)
    for pol in (res.policy, IQLPolicy.load(ckpt, greedy=greedy)):
        assert mask[pol.act(np.array(obs, np.float32), mask, np.random.default_rng(0))]
        assert mask[pol.decide(np.array(obs, np.float32), mask).action]

def test_masked_action_never_chosen_even_when_logits_prefer_it():
    actor = mlp(3, (4,), 3)
    with torch.no_grad(): actor[-1].bias.copy_(torch.tensor([0., 1e4, 0.]))
    pol = IQLPolicy(actor, torch.zeros(3), torch.ones(3), replace(IQLConfig.preset('tiny'), hidden=(4,)), greedy=False)
    assert pol.act(np.zeros(3), [True, True, True]) == 1
    assert all(pol.act(np.zeros(3), [True, False, True], np.random.default_rng(i)) != 1 for i in range(50))
    with pytest.raises(ValueError, match='mask has shape'): pol.act(np.zeros(3), [True, True])

def test_checkpoint_round_trip_and_refusals(trained, tmp_path):
    ds, res, ckpt = trained
    back = IQLPolicy.load(ckpt)
    assert back.config == res.config and back.name == 'iql'
    assert torch.allclose(back.probs(ds.obs[:50], ds.masks[:50]), res.policy.probs(ds.obs[:50], ds.masks[:50]))
    assert set(torch.load(ckpt, weights_only=True)) >= {'actor', 'q1', 'q2', 'v', 'config', 'obs_mean', 'obs_std'}
    bad = tmp_path / 'bad.pt'; bad.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='refusing saved IQL policy .*: not a plain tensor/JSON file'): IQLPolicy.load(bad)   # esper.io.load_checked's wording
    torch.save({'format': 'other'}, bad)
    with pytest.raises(ValueError, match="is not a saved IQL policy: expected format 'esper.iql/1', got 'other'"): IQLPolicy.load(bad)
    assert not list(ckpt.parent.glob('*.tmp'))   # the save was atomic and left nothing behind

def test_log_fn_receives_iql_curves(trained):
    ds, _, _ = trained
    seen = []
    train_iql(ds, IQLConfig.preset('tiny'), steps=60, seed=1, log_fn=lambda m, s: seen.append((s, set(m))))
    assert [s for s, _ in seen] == [50, 60]
    assert seen[0][1] == {'iql/q_loss', 'iql/v_loss', 'iql/policy_loss', 'iql/cql_loss', 'iql/mean_q', 'iql/mean_v',
                          'iql/adv_mean', 'charts/updates_per_s'}
    with pytest.raises(ValueError, match='steps must be >= 1'): train_iql(ds, IQLConfig.preset('tiny'), steps=0, seed=0)

def test_iql_beats_random_behaviour_on_toy_env(trained):
    _, res, _ = trained
    env = ToyMaskedEnv()
    assert np.mean(collect_episodes(env, res.policy, 10, seed=500)) > np.mean(collect_episodes(env, UniformRandom(1), 10, seed=500)) + 1

# ---------------------------------------------------------------- the observation guard

BAD = TrainingSignals(train_acc=float('nan'), val_acc=float('inf'), grad_health=float('-inf'), lr=5.)

def test_iql_policy_decides_on_the_guarded_observation():
    "IQL trains on guarded observations, so TrainingSignals with NaN/inf features give the decision of their guarded observation."
    torch.manual_seed(0)
    pol = IQLPolicy(mlp(27, (8,), 7), torch.zeros(27), torch.ones(27), replace(IQLConfig.preset('tiny'), hidden=(8,)))
    mask = [True, True, False, True, False, False, True]
    d = pol.decide(BAD, mask)
    assert d == pol.decide(obs_from_signals(BAD), mask) and math.isfinite(d.confidence)

def test_epsilon_greedy_hands_the_wrapped_policy_the_guarded_observation():
    seen = []
    def look(obs, mask, rng): seen.append(obs); return 0
    EpsilonGreedy(look, 0., seed=0).decide(BAD, np.ones(7, bool))
    np.testing.assert_array_equal(seen[0], obs_from_signals(BAD))
