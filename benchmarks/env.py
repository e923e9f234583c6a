"""MorphogeneticEnv cost: process CPU seconds per step with and without a live seed, for the one-pass evaluation and the
old three-pass one side by side (`live_speedup`); the reward noise of a fixed (periodic) policy over 16 run seeds,
plain and paired with the static twin (`return_std_plain`, `return_std_paired`); then env steps (epochs) per second
with 1 and 2 AsyncVectorEnv envs.

Random valid actions; every count is measured side by side in this one process, after a warm-up step, over
whole episodes (resets included). Prints one JSON line; `step_s_per_env` is the wall time of one vector step
(every env plays one epoch), `loadavg_1m_before` says how busy the machine already was.

    .venv/bin/python benchmarks/env.py [--preset small] [--rounds 3] [--episodes 2] [--envs 1,2]
"""
import argparse, json, os, platform, time
import numpy as np
import torch
torch.set_num_threads(1)
from esper.simic.env import make_env_fn
from esper.simic.ppo import make_vector_env
from esper.config import RunConfig
from esper.io import rng_state, set_rng_state

def measure(n_envs:int, preset:str, episodes:int, seed:int=0) -> dict:
    "Env steps per second of `n_envs` async envs over `episodes` episodes each (after one warm-up step)."
    envs = make_vector_env(make_env_fn('morpho', preset=preset), n_envs, 'async')
    rng = np.random.default_rng(seed)
    pick = lambda m: np.array([rng.choice(np.flatnonzero(row)) for row in m])
    try:
        _, info = envs.reset(seed=seed)
        _, _, _, _, info = envs.step(pick(info['action_mask']))  # warm-up: first epoch of every env
        n_steps = episodes * RunConfig.preset(preset).epochs
        t0 = time.perf_counter()
        for _ in range(n_steps): _, _, _, _, info = envs.step(pick(info['action_mask']))
        wall = time.perf_counter() - t0
    finally: envs.close()
    return {'n_envs': n_envs, 'vector_steps': n_steps, 'env_steps': n_steps * n_envs, 'wall_s': round(wall, 2),
            'env_steps_per_s': round(n_steps * n_envs / wall, 3), 'step_s_per_env': round(wall / n_steps, 3)}

def cpu_per_step(preset:str, rounds:int, seed:int=0) -> dict:
    "Process CPU seconds per env step (one epoch) with a live seed and without, for the one-pass and the three-pass evaluation."
    from esper.trainer import Trainer
    cfg = RunConfig.preset(preset, seed=seed)
    t = {(p, live): [] for p in ('one_pass', 'three_pass') for live in (True, False)}
    data = Trainer(cfg).data
    for r in range(rounds):
        runs = {p: Trainer(cfg, data=data) for p in ('one_pass', 'three_pass')}
        rng = {}
        for p, tr in runs.items(): tr.one_pass = p == 'one_pass'; tr.reset(); rng[p] = rng_state()
        actions = [0, 1] + [5] * (cfg.epochs - 2)   # two epochs without a seed, then germinate and advance
        for a in actions:                          # the two paths alternate, so load drifts hit both alike
            for p, tr in runs.items():
                set_rng_state(rng[p])              # each run keeps its own global generators (a new seed draws from them)
                live = bool(tr.model.live_slots()) or a == 1
                c0 = time.process_time(); tr.step(a, strict=False); t[(p, live)].append(time.process_time() - c0)
                rng[p] = rng_state()
        h = [tr.history for tr in runs.values()]
        assert [x['val/acc'] for x in h[0]] == [x['val/acc'] for x in h[1]], "the two paths must give the same run"
    mean = lambda k: float(np.mean(t[k]))
    out = {f'cpu_s_per_step_{"live" if live else "dormant"}_{p}': round(mean((p, live)), 4) for (p, live) in t}
    out['live_speedup'] = round(mean(('three_pass', True)) / mean(('one_pass', True)), 3)
    out['dormant_speedup'] = round(mean(('three_pass', False)) / mean(('one_pass', False)), 3)
    return out

def reward_noise(preset:str, n_seeds:int) -> dict:
    "Std over run seeds of the periodic policy's episode return, plain and paired with the static twin (common random numbers)."
    import tempfile
    from esper.simic.env import MorphogeneticEnv
    from esper.simic.rewards import RewardConfig, compute_reward
    from esper.tamiyo.baselines import make_policy
    plain_cfg, paired_cfg = RewardConfig(), RewardConfig(baseline='static')
    env = MorphogeneticEnv(preset, reward_config=paired_cfg, baseline_cache=tempfile.mkdtemp(), time_limit='terminate')
    plain, paired, twin_plain = [], [], []
    for seed in range(n_seeds):
        pol = make_policy('periodic', n_slots=env.config.n_slots); pol.reset()
        _, info = env.reset(options={'run_seed': seed}); prev, done, rp, rq = info['signals'], False, 0., 0.
        while not done:
            _, r, term, trunc, info = env.step(pol.decide(prev, info['action_mask']).action); done = term or trunc
            rp += compute_reward(prev, info['signals'], terminal=done, config=plain_cfg)[0] + info['reward_components']['invalid_action']
            rq += r; prev = info['signals']
        b = env.baseline  # the static twin's return under the plain reward: accuracy gain plus the terminal bonus
        plain.append(rp); paired.append(rq); twin_plain.append(100 * (b[-1] - b[0]) + 0.5 * 100 * b[-1])
    sd = lambda v: float(np.std(v, ddof=1))
    return {'reward_noise_seeds': n_seeds, 'return_std_plain': round(sd(plain), 3), 'return_std_paired': round(sd(paired), 3),
            'return_std_diff_periodic_minus_static': round(sd(np.subtract(plain, twin_plain)), 3),
            'noise_reduction': round(sd(plain) / sd(paired), 2), 'return_mean_paired': round(float(np.mean(paired)), 3)}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='small'); ap.add_argument('--episodes', type=int, default=2)
    ap.add_argument('--envs', default='1,2'); ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--noise-seeds', type=int, default=16)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    cpu = {**cpu_per_step(a.preset, a.rounds), **reward_noise(a.preset, a.noise_seeds)}
    rows = [measure(int(n), a.preset, a.episodes) for n in a.envs.split(',')]
    base = rows[0]['env_steps_per_s']
    print(json.dumps({'bench': 'env', 'preset': a.preset, **cpu, 'vector': 'async', 'episodes_per_env': a.episodes,
                      'env_steps_per_s': {r['n_envs']: r['env_steps_per_s'] for r in rows},
                      'scaling_vs_1': {r['n_envs']: round(r['env_steps_per_s'] / base, 2) for r in rows},
                      'step_s_per_env': {r['n_envs']: r['step_s_per_env'] for r in rows},
                      'cpus': os.cpu_count(), 'loadavg_1m_before': round(load, 2), 'torch': torch.__version__,
                      'python': platform.python_version()}))

if __name__ == '__main__': main()
