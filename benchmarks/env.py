"""MorphogeneticEnv throughput: env steps (epochs) per second with 1, 2 and 4 AsyncVectorEnv envs on the 'small' preset.

Random valid actions; every count is measured side by side in this one process, after a warm-up step, over
whole episodes (resets included). Prints one JSON line; `step_s_per_env` is the wall time of one vector step
(every env plays one epoch), `loadavg_1m_before` says how busy the machine already was.

    .venv/bin/python benchmarks/env.py [--preset small] [--episodes 2] [--envs 1,2,4]
"""
import argparse, json, os, platform, time
import numpy as np
import torch
torch.set_num_threads(1)
from esper.simic.env import make_env_fn
from esper.simic.ppo import make_vector_env
from esper.config import RunConfig

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

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='small'); ap.add_argument('--episodes', type=int, default=2)
    ap.add_argument('--envs', default='1,2,4')
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rows = [measure(int(n), a.preset, a.episodes) for n in a.envs.split(',')]
    base = rows[0]['env_steps_per_s']
    print(json.dumps({'bench': 'env', 'preset': a.preset, 'vector': 'async', 'episodes_per_env': a.episodes,
                      'env_steps_per_s': {r['n_envs']: r['env_steps_per_s'] for r in rows},
                      'scaling_vs_1': {r['n_envs']: round(r['env_steps_per_s'] / base, 2) for r in rows},
                      'step_s_per_env': {r['n_envs']: r['step_s_per_env'] for r in rows},
                      'cpus': os.cpu_count(), 'loadavg_1m_before': round(load, 2), 'torch': torch.__version__,
                      'python': platform.python_version()}))

if __name__ == '__main__': main()
