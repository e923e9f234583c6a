"""MorphogeneticEnv: gymnasium contract, episode end, masks, determinism, invalid actions, vector envs, PPO → LearnedTamiyo → run."""
import os
os.environ.setdefault('WANDB_MODE', 'offline')
import numpy as np
import pytest
import torch
import gymnasium as gym
from gymnasium.utils.env_checker import check_env

from esper.contracts.actions import ActionOp, action_mask, encode_action
from esper.contracts.stages import SeedStage
from esper.nissa.output import NissaHub, MemoryBackend
from esper.simic.env import ENV_ID, MorphogeneticEnv, make_env_fn
from esper.simic.ppo import LearnedTamiyo, PPOConfig, make_vector_env, train_ppo
from esper.tamiyo.baselines import make_policy
from esper.config import RunConfig
from esper.run import run

torch.set_num_threads(1)
EPOCHS = RunConfig.preset('tiny').epochs
ADVANCE, CULL = encode_action(ActionOp.ADVANCE, 0), encode_action(ActionOp.CULL, 0)

@pytest.fixture(scope='module')
def env():
    e = MorphogeneticEnv('tiny'); yield e; e.close()

def play(env, seed, pick):
    "One episode; `pick(info, rng)` chooses each action. Returns the list of (action, obs, reward, term, trunc, info)."
    obs, info = env.reset(seed=seed); rng, out = np.random.default_rng(seed), [(None, obs, 0., False, False, info)]
    while not (out[-1][3] or out[-1][4]):
        a = pick(info, rng); obs, r, te, tr, info = env.step(a); out.append((a, obs, r, te, tr, info))
    return out

random_valid = lambda info, rng: int(rng.choice(np.flatnonzero(info['action_mask'])))
random_any = lambda info, rng: int(rng.integers(len(info['action_mask'])))

def test_check_env_passes(env):
    check_env(env, skip_render_check=True)
    assert env.observation_space == gym.spaces.Box(-1, 1, (27,), np.float32) and env.action_space == gym.spaces.Discrete(7)
    assert env.metadata['action_names'][0] == 'WAIT' and len(env.metadata['action_names']) == 7

def test_episode_is_epochs_steps_and_ends_by_truncation(env):
    ep = play(env, 0, random_valid)
    assert len(ep) - 1 == EPOCHS
    assert [(te, tr) for _, _, _, te, tr, _ in ep[1:]] == [(False, False)] * (EPOCHS - 1) + [(False, True)]
    with pytest.raises(RuntimeError, match='reset'): env.step(0)

def test_time_limit_terminate_flips_only_the_flags():
    a, b = MorphogeneticEnv('tiny'), MorphogeneticEnv('tiny', time_limit='terminate')
    ea, eb = play(a, 3, random_valid), play(b, 3, random_valid)
    assert (ea[-1][3], ea[-1][4], eb[-1][3], eb[-1][4]) == (False, True, True, False)
    assert [x[2] for x in ea] == [x[2] for x in eb]

def test_masks_match_stages_and_observations_stay_in_box(env):
    for seed in (1, 2):
        for a, obs, r, te, tr, info in play(env, seed, random_any):
            stages = info['signals'].stages
            assert info['action_mask'].dtype == np.bool_
            assert info['action_mask'].tolist() == action_mask(stages)
            assert env.observation_space.contains(obs) and not info['obs_clipped']  # the clip is only a guard
            if a is not None: assert r == pytest.approx(sum(info['reward_components'].values()))

def test_same_seed_same_trajectory():
    a, b = MorphogeneticEnv('tiny'), MorphogeneticEnv('tiny')
    ea, eb = play(a, 7, random_any), play(b, 7, random_any)
    assert [x[0] for x in ea] == [x[0] for x in eb] and [x[2] for x in ea] == [x[2] for x in eb]
    for x, y in zip(ea, eb): np.testing.assert_array_equal(x[1], y[1])
    other = play(a, 8, random_any)
    assert other[0][5]['run_seed'] != ea[0][5]['run_seed']

def test_masked_action_is_reported_and_played_as_wait():
    a, b = MorphogeneticEnv('tiny'), MorphogeneticEnv('tiny')
    oa, ia = a.reset(seed=5); ob, ib = b.reset(seed=5)
    assert not ia['action_mask'][CULL]  # an empty slot cannot be culled
    oa, ra, _, _, ia = a.step(CULL); ob, rb, _, _, ib = b.step(0)
    np.testing.assert_array_equal(oa, ob)
    assert (ia['invalid_action'], ib['invalid_action']) == (True, False)
    assert ra == pytest.approx(rb - a.invalid_penalty) and ia['reward_components']['invalid_action'] == -a.invalid_penalty
    assert ia['signals'].stages == (SeedStage.DORMANT,)
    with pytest.raises(ValueError, match='Discrete'): a.step(7)

def test_heuristic_acts_in_the_env_from_info_signals(env):
    pol = make_policy('heuristic'); pol.reset()
    ep = play(env, 4, lambda info, rng: pol.decide(info['signals'], info['action_mask']).action)
    assert not any(x[5].get('invalid_action') for x in ep)

def test_registered_and_make_env_fn():
    e = gym.make(ENV_ID, preset='tiny')
    assert isinstance(e.unwrapped, MorphogeneticEnv) and e.unwrapped.config.preset == 'tiny'
    assert isinstance(make_env_fn('morpho', preset='tiny')(), MorphogeneticEnv)
    assert make_env_fn('CartPole-v1')().action_space.n == 2

@pytest.mark.parametrize('vector', ['sync', 'async'])
def test_vector_env_no_transition_spans_two_episodes(vector):
    envs = make_vector_env(make_env_fn('morpho', preset='tiny'), 2, vector)
    try:
        obs, info = envs.reset(seed=0); ends = 0
        for t in range(EPOCHS + 2):
            nxt, r, te, tr, info = envs.step(np.zeros(2, dtype=np.int64))
            for i in range(2):
                if tr[i]:  # the final obs is the last epoch's; the returned obs is a fresh run's epoch 0
                    assert info['final_obs'][i][0] == pytest.approx(1.) and nxt[i][0] == 0. and not te[i]
                    assert info['final_info']['epoch'][i] == EPOCHS and info['epoch'][i] == 0; ends += 1
                else: assert nxt[i][0] == pytest.approx(obs[i][0] + 1 / EPOCHS)
            assert info['action_mask'].shape == (2, 7) and info['action_mask'].dtype == np.bool_
            obs = nxt
        assert ends == 2
    finally: envs.close()

class Watch:
    "Wraps a policy and records whether each decision was allowed by its mask."
    def __init__(self, pol): self.pol, self.name, self.ok = pol, pol.name, []
    def reset(self): self.pol.reset()
    def decide(self, signals, mask):
        d = self.pol.decide(signals, mask); self.ok.append(bool(mask[d.action])); return d

def test_train_ppo_on_tiny_morpho_then_learned_tamiyo_plays_a_run(tmp_path):
    ck = tmp_path / 'ppo.pt'
    res = train_ppo(make_env_fn('morpho', preset='tiny'), PPOConfig.preset('tiny'), n_envs=2, total_steps=32, seed=0,
                    vector='sync', checkpoint_path=ck)
    assert res.steps == 32 and len(res.episode_returns) == 4 and all(l == EPOCHS for l in res.episode_lengths)
    assert sum(v for k, v in res.history[-1].items() if k.startswith('actions/')) == 32
    for greedy in (True, False):
        pol = Watch(LearnedTamiyo.load(ck, greedy=greedy))
        assert pol.name == 'ppo'
        out = run(RunConfig.preset('tiny', seed=11), pol, NissaHub([MemoryBackend()]), save=False)
        assert len(out.history) == EPOCHS and len(pol.ok) == EPOCHS and all(pol.ok)
    # masks that allow only one action are always obeyed, with confidence 1
    sig = MorphogeneticEnv('tiny').reset(seed=0)[1]['signals']
    only = [False] * 7; only[3] = True
    d = LearnedTamiyo.load(ck).decide(sig, only)
    assert (d.action, d.confidence) == (3, pytest.approx(1.))
