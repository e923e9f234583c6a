"""Simic's online RL core: GAE, masks, the PPO loss, a CartPole run, checkpoint/resume, reward shaping."""
import math, os
from pathlib import Path
os.environ.setdefault('WANDB_MODE', 'offline')
import numpy as np
import pytest
import torch
import gymnasium as gym
from hypothesis import given, settings, strategies as st

from esper.contracts.stages import SeedStage
from esper.contracts.signals import TrainingSignals, SlotSignals
from esper.simic import ppo as ppo_mod
from esper.simic.features import ObsNormalizer
from esper.simic.networks import ActorCritic, MaskedCategorical
from esper.contracts.actions import action_mask
from esper.contracts.schemas import TelemetryEventType
from esper.io import load_checked
from esper.nissa.output import NissaHub, MemoryBackend
from esper.simic.env import make_env_fn, describe_env
from esper.simic.features import obs_from_signals
from esper.simic.ppo import (CHECKPOINT_FORMAT, PPOConfig, LearnedTamiyo, gae, ppo_loss, approx_kl, explained_variance, train_ppo,
                             load_ppo_policy, action_masks)
from esper.simic.rewards import RewardConfig, compute_reward, stage_potential

ROOT = Path(__file__).resolve().parents[1]
load_checkpoint = lambda p: load_checked(p, CHECKPOINT_FORMAT, 'PPO checkpoint')

torch.set_num_threads(1)

# --- toy environments -------------------------------------------------------------------------------

class MatchEnv(gym.Env):
    "Reward 1 for the action the one-hot observation points at; action 3 is invalid; truncated at `horizon`."
    def __init__(self, horizon=8, random_targets=True):
        self.observation_space, self.action_space = gym.spaces.Box(0, 1, (3,), np.float32), gym.spaces.Discrete(4)
        self.metadata = {**self.metadata, 'action_names': ['A', 'B', 'C', 'NEVER']}
        self.horizon, self.random_targets, self.mask = horizon, random_targets, np.array([True, True, True, False])
    def _target(self): return int(self.np_random.integers(3)) if self.random_targets else self.t % 3
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed); self.t = 0; self.target = self._target()
        return np.eye(3, dtype=np.float32)[self.target], {'action_mask': self.mask}
    def step(self, a):
        if not self.mask[a]: raise RuntimeError(f"masked action {a} taken")
        r = float(a == self.target); self.t += 1; self.target = self._target()
        return np.eye(3, dtype=np.float32)[self.target], r, False, self.t >= self.horizon, {'action_mask': self.mask}

class RandomMaskEnv(gym.Env):
    "A fresh random mask with every observation (reset and step); raises if a masked action is ever taken."
    def __init__(self, n=6):
        self.observation_space, self.action_space = gym.spaces.Box(0, 1, (n,), np.float32), gym.spaces.Discrete(n)
        self.n = n
    def _obs(self):
        self.mask = self.np_random.random(self.n) < 0.3
        self.mask[self.np_random.integers(self.n)] = True
        return self.mask.astype(np.float32), {'action_mask': self.mask.copy()}
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed); self.t = 0; return self._obs()
    def step(self, a):
        if not self.mask[a]: raise RuntimeError(f"masked action {a} taken at t={self.t}")
        self.t += 1; obs, info = self._obs()
        return obs, float(a == 0), bool(self.np_random.random() < 0.05), self.t >= 7, info

class ConstEnv(gym.Env):
    "Reward 1 every step, one constant observation, episode ends after 5 steps (truncated or terminated)."
    def __init__(self, terminate=False):
        self.observation_space, self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.Discrete(2)
        self.terminate = terminate
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed); self.t = 0; return np.zeros(1, np.float32), {}
    def step(self, a):
        self.t += 1; end = self.t >= 5
        return np.zeros(1, np.float32), 1., end and self.terminate, end and not self.terminate, {}

# --- GAE ---------------------------------------------------------------------------------------------

def naive_gae(r, v, term, trunc, nv, gamma, lam):
    "Per-env, per-step Python loop: the reference implementation."
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        running = 0.
        for t in reversed(range(T)):
            boot = 0. if term[t, n] else gamma * nv[t, n]
            delta = r[t, n] + boot - v[t, n]
            running = delta + (0. if (term[t, n] or trunc[t, n]) else gamma * lam * running)
            adv[t, n] = running
    return adv, adv + v

@pytest.mark.parametrize('seed', range(5))
def test_gae_equals_naive_per_env_loop(seed):
    g = np.random.default_rng(seed)
    T, N = int(g.integers(1, 40)), int(g.integers(1, 7))
    r, v, nv = g.normal(size=(T, N)), g.normal(size=(T, N)), g.normal(size=(T, N))
    term, trunc = g.random((T, N)) < 0.1, g.random((T, N)) < 0.1   # includes steps that are both
    gamma, lam = float(g.uniform(0.8, 1.)), float(g.uniform(0.5, 1.))
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    adv, ret = gae(t(r), t(v), torch.tensor(term), torch.tensor(trunc), t(nv), gamma, lam)
    ref_adv, ref_ret = naive_gae(r, v, term, trunc, nv, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), ref_ret, rtol=1e-10, atol=1e-10)
    assert term.any() or trunc.any() or T * N < 20  # the data really has episode ends

def test_gae_truncation_bootstraps_termination_does_not():
    r, v, nv = torch.ones(1, 1), torch.zeros(1, 1), torch.full((1, 1), 10.)
    yes, no = torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool)
    assert gae(r, v, yes, no, nv, 0.9, 0.95)[0].item() == pytest.approx(1.)
    assert gae(r, v, no, yes, nv, 0.9, 0.95)[0].item() == pytest.approx(10.)
    assert gae(r, v, yes, yes, nv, 0.9, 0.95)[0].item() == pytest.approx(1.)  # terminated wins

# --- masks -------------------------------------------------------------------------------------------

def test_masked_actions_never_sampled():
    torch.manual_seed(0)
    B, A = 64, 7
    mask = torch.rand(B, A) < 0.4
    mask[torch.arange(B), torch.randint(A, (B,))] = True
    logits = torch.randn(B, A) * 3 + 20 * (~mask)            # masked actions have by far the largest logits
    d = MaskedCategorical(logits, mask)
    samples = d.sample((5_000,))                              # 320k draws
    assert samples.shape == (5_000, B)
    assert bool(mask.gather(1, samples.T).all())
    ref = torch.softmax(logits.masked_fill(~mask, -math.inf), -1)
    torch.testing.assert_close(d.probs, ref)
    torch.testing.assert_close(d.entropy(), -(ref * ref.clamp_min(1e-30).log()).sum(-1))
    assert float(d.probs[~mask].abs().max()) == 0.

def test_network_respects_mask_even_with_adversarial_weights():
    torch.manual_seed(1)
    net = ActorCritic(5, 4)
    with torch.no_grad(): net.actor[-1].bias[:] = torch.tensor([0., 50., 50., 0.])
    mask = torch.tensor([[True, False, False, True]]).repeat(2_000, 1)
    with torch.no_grad(): a, logp, ent, v = net.get_action_and_value(torch.randn(2_000, 5), mask)
    assert set(a.unique().tolist()) <= {0, 3} and torch.isfinite(logp).all() and (ent <= math.log(2) + 1e-6).all()

def test_train_ppo_never_takes_masked_action_with_changing_masks():
    res = train_ppo(RandomMaskEnv, PPOConfig.preset('tiny'), n_envs=3, total_steps=3 * 16 * 6, seed=0)
    assert res.steps == 288 and len(res.episode_returns) > 20   # RandomMaskEnv raises on a masked action

def test_action_masks_from_info():
    info = {'action_mask': np.array([[1, 0, 1], [0, 0, 0]], dtype=bool), '_action_mask': np.array([True, False])}
    assert action_masks(info, 2, 3).tolist() == [[True, False, True], [True, True, True]]
    assert action_masks({}, 1, 2).tolist() == [[True, True]]

# --- the PPO loss, by hand ---------------------------------------------------------------------------

def test_ppo_loss_hand_checked():
    lp_old = torch.log(torch.tensor([0.2, 0.4])); lp_new = torch.log(torch.tensor([0.3, 0.2]))  # ratios 1.5, 0.5
    adv = torch.tensor([1., -1.])
    out = ppo_loss(lp_new, lp_old, adv, torch.tensor([1., 3.]), torch.tensor([1.5, 1.5]), torch.tensor([2., 2.]),
                   torch.tensor([0.5, 0.5]), clip_coef=0.2, vf_clip=0.2, ent_coef=0.01, vf_coef=0.5)
    assert out.policy_loss.item() == pytest.approx(-(1.2 - 0.8) / 2)
    assert out.value_loss.item() == pytest.approx(0.5)
    assert out.entropy.item() == pytest.approx(0.5)
    assert out.loss.item() == pytest.approx(-0.2 + 0.5 * 0.5 - 0.01 * 0.5)
    assert out.clipfrac.item() == 1.
    assert out.approx_kl.item() == pytest.approx(((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2)
    # unclipped value loss: 0.5 * mean((1-2)^2, (3-2)^2) = 0.5; clipped variant with a small step differs
    plain = ppo_loss(lp_new, lp_old, adv, torch.tensor([1., 3.]), torch.tensor([1., 3.]), torch.tensor([2., 4.]), torch.zeros(2))
    assert plain.value_loss.item() == pytest.approx(0.5 * (1 + 1) / 2)

def test_clipped_objective_has_no_gradient_beyond_the_clip():
    lp_old = torch.log(torch.tensor([0.2, 0.2]))
    lp_new = torch.log(torch.tensor([0.3, 0.21])).requires_grad_()   # ratios 1.5 (clipped) and 1.05 (inside)
    out = ppo_loss(lp_new, lp_old, torch.tensor([1., 1.]), torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), clip_coef=0.2)
    out.policy_loss.backward()
    assert lp_new.grad[0].item() == 0. and lp_new.grad[1].item() == pytest.approx(-1.05 / 2)

def test_approx_kl_and_explained_variance():
    lp = torch.log(torch.tensor([0.5, 0.25]))
    assert approx_kl(lp, lp).item() == 0.
    assert approx_kl(lp, lp + math.log(2)).item() == pytest.approx(1 - math.log(2))
    y = torch.tensor([1., 2., 3., 4.])
    assert explained_variance(y, y) == 1. and explained_variance(torch.full((4,), 2.5), y) == pytest.approx(0.)
    assert explained_variance(y.flip(0), y) == pytest.approx(1 - 5. / 1.25)
    assert math.isnan(explained_variance(y, torch.zeros(4)))

# --- the loop ----------------------------------------------------------------------------------------

def _value(res, obs):
    return res.network.get_value(torch.from_numpy(res.normalizer(obs))).item()

def test_truncation_is_bootstrapped_termination_is_not():
    "Constant reward 1, gamma 0.9, a state that never changes: truncated episodes are worth 1/(1-0.9) = 10, terminated ones at most 4.1."
    cfg = PPOConfig.preset('tiny', lr=0.05, gamma=0.9, clip_vloss=False, norm_obs=False, anneal_lr=False)
    trunc = train_ppo(ConstEnv, cfg, n_envs=2, total_steps=2 * 16 * 60, seed=0)
    term = train_ppo(lambda: ConstEnv(terminate=True), cfg, n_envs=2, total_steps=2 * 16 * 60, seed=0)
    assert _value(trunc, np.zeros((1, 1), np.float32)) > 8.
    assert 1. < _value(term, np.zeros((1, 1), np.float32)) < 4.2

def test_normaliser_frozen_whenever_observations_are_normalised(monkeypatch):
    seen = []
    class Spy(ObsNormalizer):
        def __call__(self, obs): seen.append(self.frozen); return super().__call__(obs)
    monkeypatch.setattr(ppo_mod, 'ObsNormalizer', Spy)
    res = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=2 * 16 * 4, seed=0)
    assert len(seen) >= 4 * 16 and all(seen)
    assert res.normalizer.rms.count == pytest.approx(2 * 16 * 4, abs=1e-3)   # updated between rollouts with every obs

def test_logged_keys_and_action_histogram():
    logs = []
    train_ppo(MatchEnv, PPOConfig.preset('tiny', target_kl=1e-6), n_envs=2, total_steps=2 * 16 * 3, seed=0,
              log_fn=lambda m, s: logs.append((s, m)))
    need = {'ppo/policy_loss', 'ppo/value_loss', 'ppo/entropy', 'ppo/approx_kl', 'ppo/clipfrac', 'ppo/explained_variance',
            'ppo/lr', 'charts/SPS', 'charts/episodic_return', 'charts/episodic_length', 'actions/A', 'actions/NEVER'}
    assert [s for s, _ in logs] == [32, 64, 96]
    assert need <= set(logs[-1][1])
    assert all(sum(m[f'actions/{n}'] for n in 'ABC') == 32 and m['actions/NEVER'] == 0 for _, m in logs)
    assert all(m['ppo/epochs'] == 1 for _, m in logs[1:])   # KL early stop after the first epoch
    assert logs[0][1]['ppo/lr'] > logs[-1][1]['ppo/lr'] > 0  # linear annealing

def test_same_seed_same_run():
    a = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=256, seed=3)
    b = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=256, seed=3)
    c = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=256, seed=4)
    assert a.episode_returns == b.episode_returns != c.episode_returns
    for k, v in a.network.state_dict().items(): assert torch.equal(v, b.network.state_dict()[k])

def test_bad_inputs_fail_with_clear_messages():
    with pytest.raises(ValueError, match="vector must be 'sync' or 'async'"):
        train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=1, total_steps=64, seed=0, vector='threads')
    with pytest.raises(TypeError, match='Discrete action space'):
        train_ppo(lambda: gym.make('MountainCarContinuous-v0'), PPOConfig.preset('tiny'), n_envs=1, total_steps=64, seed=0)
    with pytest.raises(ValueError, match='total_steps'):
        train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=8, seed=0)

def test_async_vector_env():
    res = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=64, seed=0, vector='async')
    assert res.steps == 64 and len(res.episode_returns) == 8

def test_cartpole_improves():
    "A short CartPole-v1 run: the last 20 episodes clearly beat the first 20 (about 20 s on one free core)."
    res = train_ppo(lambda: gym.make('CartPole-v1'), PPOConfig.preset('cartpole'), n_envs=4, total_steps=24_576, seed=0)
    first, last = np.mean(res.episode_returns[:20]), res.mean_return(20)
    assert first < 40 and last > 2.5 * first, (first, last)

# --- checkpoint / resume -----------------------------------------------------------------------------

class Stop(Exception): pass

def _stop_at(step):
    def log_fn(m, s):
        if s >= step: raise Stop()
    return log_fn

def test_resume_continues_identically(tmp_path):
    "Deterministic env whose episodes end on rollout boundaries: a stopped and resumed run equals an uninterrupted one."
    cfg, ck = PPOConfig.preset('tiny', ent_coef_final=0.), tmp_path / 'ppo.pt'
    env = lambda: MatchEnv(horizon=16, random_targets=False)
    kw = dict(n_envs=2, total_steps=2 * 16 * 12, seed=5)
    full = train_ppo(env, cfg, **kw)
    with pytest.raises(Stop): train_ppo(env, cfg, **kw, checkpoint_path=ck, log_fn=_stop_at(2 * 16 * 5))
    assert load_checkpoint(ck)['update'] == 5
    resumed = train_ppo(env, cfg, **kw, checkpoint_path=ck, resume=ck)
    assert (resumed.steps, resumed.updates) == (full.steps, full.updates)
    assert resumed.episode_returns == full.episode_returns and resumed.episode_steps == full.episode_steps
    for k, v in full.network.state_dict().items(): assert torch.equal(v, resumed.network.state_dict()[k]), k
    assert resumed.normalizer.state_dict()['count'] == full.normalizer.state_dict()['count']
    torch.testing.assert_close(resumed.normalizer.rms.mean, full.normalizer.rms.mean, rtol=0, atol=0, check_dtype=False)
    assert [h['ppo/policy_loss'] for h in resumed.history] == [h['ppo/policy_loss'] for h in full.history]

def test_checkpoint_restores_all_state(tmp_path):
    ck = tmp_path / 'sub' / 'cp.pt'
    cfg = PPOConfig.preset('cartpole', n_steps=32, checkpoint_every=2)
    res = train_ppo(lambda: gym.make('CartPole-v1'), cfg, n_envs=2, total_steps=2 * 32 * 6, seed=7, checkpoint_path=ck)
    state = torch.load(ck, weights_only=True)                         # plain data only
    assert not list(ck.parent.glob('*.tmp'))
    assert (state['update'], state['global_step'], state['n_envs'], state['seed']) == (6, 384, 2, 7)
    assert PPOConfig(**state['config']) == cfg
    for k, v in res.network.state_dict().items(): assert torch.equal(state['model'][k], v)
    assert state['normalizer']['count'] == res.normalizer.rms.count
    assert len(state['optimizer']['state']) == len(list(res.network.parameters()))
    assert all(int(s['step']) == 6 * cfg.update_epochs * cfg.n_minibatches for s in state['optimizer']['state'].values())
    assert state['rng']['torch'].dtype == torch.uint8 and len(state['rng']['numpy'][0]) == 624   # esper.io.rng_state layout
    assert state['episodes']['returns'] == res.episode_returns and len(state['history']) == 6
    # the saved RNG is the RNG at the end of the run
    assert torch.equal(state['rng']['torch'], torch.get_rng_state())
    # resuming with a longer budget continues from step 384 and keeps the old episodes as a prefix
    more = train_ppo(lambda: gym.make('CartPole-v1'), cfg, n_envs=2, total_steps=2 * 32 * 8, seed=7, resume=ck)
    assert more.steps == 512 and more.updates == 8 and more.episode_returns[:len(res.episode_returns)] == res.episode_returns
    with pytest.raises(ValueError, match='config differs'):
        train_ppo(lambda: gym.make('CartPole-v1'), PPOConfig.preset('cartpole'), n_envs=2, total_steps=512, seed=7, resume=ck)

def test_load_policy(tmp_path):
    ck = tmp_path / 'p.pt'
    res = train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=2 * 16 * 40, seed=0, checkpoint_path=ck)
    net, norm, meta = load_ppo_policy(ck)
    assert (meta['obs_dim'], meta['n_actions'], meta['action_names'][3], meta['global_step']) == (3, 4, 'NEVER', 1280)
    assert norm.frozen and not net.training and meta['config'] == PPOConfig.preset('tiny')
    x = torch.from_numpy(norm(np.eye(3, dtype=np.float32)))
    a, probs = net.act(x, torch.tensor([[True, True, True, False]] * 3))
    assert a.tolist() == [0, 1, 2] and float(probs[:, 3].max()) == 0.
    torch.testing.assert_close(net.get_value(x), res.network.get_value(x))
    with pytest.raises(ValueError, match='not a PPO checkpoint'):
        torch.save({'format': 'other'}, tmp_path / 'x.pt'); load_ppo_policy(tmp_path / 'x.pt')

def test_checkpoint_says_what_it_learned(tmp_path):
    "The env spec is derived from a make_env_fn partial (or given), saved, returned by load_ppo_policy, and checked on resume."
    ck, cfg = tmp_path / 'cp.pt', PPOConfig.preset('cartpole', n_steps=16)
    train_ppo(make_env_fn('CartPole-v1'), cfg, n_envs=1, total_steps=32, seed=0, checkpoint_path=ck)
    assert load_checkpoint(ck)['env_spec'] == {'env_id': 'CartPole-v1', 'kwargs': {}}
    assert load_ppo_policy(ck)[2]['env_spec'] == {'env_id': 'CartPole-v1', 'kwargs': {}}
    with pytest.raises(ValueError, match=r"resume: environment differs .*'kwargs.max_episode_steps': \(None, 100\)") as e:
        train_ppo(make_env_fn('CartPole-v1', max_episode_steps=100), cfg, n_envs=1, total_steps=64, seed=0, resume=ck)
    assert '\n' not in str(e.value)
    more = train_ppo(make_env_fn('CartPole-v1'), cfg, n_envs=1, total_steps=64, seed=0, resume=ck)   # same env: fine
    assert more.updates == 4
    given = {'env_id': 'Match', 'horizon': 8}
    train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=1, total_steps=16, seed=0, checkpoint_path=ck, env_spec=given)
    assert load_ppo_policy(ck)[2]['env_spec'] == given

def test_morpho_env_spec_without_building_the_env():
    reward = RewardConfig(acc_scale=10.)
    spec = describe_env(make_env_fn('morpho', preset='tiny', reward_config=reward, time_limit='terminate', epochs=3))
    assert (spec['env_id'], spec['preset'], spec['time_limit'], spec['task']['epochs'], spec['task']['dataset']) == ('morpho', 'tiny', 'terminate', 3, 'synthetic')
    assert spec['reward_config']['acc_scale'] == 10. and spec['reward_config']['stage_potentials'] == list(reward.stage_potentials)
    assert describe_env(make_env_fn('morpho'))['reward_config'] == describe_env(make_env_fn('morpho', reward_config=RewardConfig()))['reward_config']

def test_old_checkpoints_still_load_as_policies_but_do_not_resume():
    old = ROOT / 'results' / 'ppo_morpho' / 'checkpoint.pt'
    assert torch.load(old, weights_only=True)['format'] == 'esper.ppo/1'
    net, norm, meta = load_ppo_policy(old)
    assert meta['env_spec'] is None and (meta['obs_dim'], meta['n_actions']) == (27, 7)
    tamiyo = LearnedTamiyo.load(old)
    s = TrainingSignals(slots=(SlotSignals(),))
    assert action_mask(s.stages)[tamiyo.decide(s, action_mask(s.stages)).action]
    with pytest.raises(ValueError, match="not a resumable PPO checkpoint: expected format 'esper.ppo/2', got 'esper.ppo/1'"):
        train_ppo(MatchEnv, meta['config'], n_envs=2, total_steps=64, seed=0, resume=old)

def test_learned_tamiyo_decides_on_the_guarded_observation():
    torch.manual_seed(0)
    net = ActorCritic(27, 7)
    tamiyo = LearnedTamiyo(net, ObsNormalizer(27, enabled=False))
    bad = TrainingSignals(train_acc=float('nan'), val_acc=float('inf'), grad_health=float('-inf'), lr=5.)
    mask = action_mask(bad.stages)
    with torch.no_grad(): probs = net.dist(torch.from_numpy(obs_from_signals(bad))[None], torch.tensor(mask)[None]).probs[0]
    d = tamiyo.decide(bad, mask)
    assert d.action == int(probs.argmax()) and d.confidence == pytest.approx(float(probs.max()), abs=0)

def test_hub_gets_one_ppo_update_event_per_update():
    hub, logs = NissaHub([MemoryBackend()]), []
    train_ppo(MatchEnv, PPOConfig.preset('tiny'), n_envs=2, total_steps=2 * 16 * 3, seed=0, hub=hub, log_fn=lambda m, s: logs.append((s, m)))
    evs = [e for e in hub.memory.events if e.type == TelemetryEventType.PPO_UPDATE]
    assert [(e.epoch, dict(e.data)) for e in evs] == logs and len(evs) == 3

# --- reward shaping ----------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3).flatmap(lambda S: st.lists(st.lists(st.sampled_from(list(SeedStage)), min_size=S, max_size=S), min_size=2, max_size=30)),
       st.floats(0.5, 1.0), st.floats(0.01, 2.))
def test_stage_shaping_telescopes(stages, gamma, weight):
    "Sum over an episode of gamma^t F_t, with the terminal potential 0, equals -Phi(s0)."
    cfg = RewardConfig(gamma=gamma, shaping_weight=weight)
    sigs = [TrainingSignals(slots=tuple(SlotSignals(s) for s in row)) for row in stages]
    T = len(sigs) - 1
    total = sum(gamma**t * compute_reward(sigs[t], sigs[t + 1], terminal=(t == T - 1), config=cfg)[1]['stage_shaping'] for t in range(T))
    assert total == pytest.approx(-stage_potential(sigs[0], cfg), abs=1e-9)

def test_reward_components_and_total():
    cfg = RewardConfig()
    a = TrainingSignals(val_acc=0.7, param_ratio=1., slots=(SlotSignals(SeedStage.DORMANT),))
    b = TrainingSignals(val_acc=0.72, param_ratio=4., slots=(SlotSignals(SeedStage.GERMINATED),))
    total, parts = compute_reward(a, b, terminal=False, config=cfg)
    assert set(parts) == {'acc_gain', 'param_rent', 'stage_shaping', 'terminal'}
    assert parts['acc_gain'] == pytest.approx(2.) and parts['param_rent'] == pytest.approx(-0.1 * math.log(4))
    assert parts['stage_shaping'] == pytest.approx(0.99 * 0.1) and parts['terminal'] == 0.
    assert total == pytest.approx(sum(parts.values()))
    assert compute_reward(a, b, terminal=True, config=cfg)[1]['terminal'] == pytest.approx(0.5 * 72)

def test_ppo_reward_preset_is_the_default_scaled_by_a_tenth():
    "RewardConfig.preset('ppo') (the reward esper ppo trains on) is the default reward × 0.1, term by term."
    a = TrainingSignals(val_acc=0.6, param_ratio=1., slots=(SlotSignals(SeedStage.TRAINING),))
    b = TrainingSignals(val_acc=0.65, param_ratio=3., slots=(SlotSignals(SeedStage.BLENDING),))
    ppo = RewardConfig.preset('ppo')
    assert (ppo.acc_scale, ppo.rent_weight, ppo.shaping_weight) == (10., 0.01, 0.01)
    for terminal in (False, True):
        _, p = compute_reward(a, b, terminal=terminal, config=ppo)
        _, d = compute_reward(a, b, terminal=terminal, config=RewardConfig.preset('default'))
        assert p == pytest.approx({k: 0.1 * v for k, v in d.items()}, abs=1e-12)
    with pytest.raises(ValueError, match="unknown reward preset"): RewardConfig.preset('nope')
