"""PPO on CartPole-v1: does every seed reach a mean return >= 475 (last 20 episodes) within 500k steps?

Run: .venv/bin/python benchmarks/ppo_cartpole.py [--seeds 0 1 2] [--steps 500000] [--n-envs 4] [--preset cartpole]
Prints one JSON line: per seed the mean return of the last 20 episodes, the first step at which the trailing
20-episode mean reached 475, and the steps per second; plus the config, hardware and versions.
"""
from __future__ import annotations
import argparse, ast, json, os, platform, sys, time
from dataclasses import asdict
import numpy as np
import torch
import gymnasium as gym
from esper.simic.env import make_env_fn
from esper.simic.ppo import PPOConfig, train_ppo

TARGET, WINDOW = 475., 20

def first_reached(returns:list[float], steps:list[int]) -> int|None:
    "Global step at which the trailing `WINDOW`-episode mean first reached `TARGET` (None if never)."
    r = np.asarray(returns)
    for k in range(WINDOW, len(r) + 1):
        if r[k - WINDOW:k].mean() >= TARGET: return int(steps[k - 1])
    return None

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--steps', type=int, default=500_000)
    p.add_argument('--n-envs', type=int, default=4)
    p.add_argument('--preset', default='cartpole')
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads (1 is fastest for these tiny nets)')
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE', help='PPOConfig overrides, e.g. norm_obs=False lr=1e-3')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = PPOConfig.preset(a.preset, **{k: ast.literal_eval(v) for k, v in (kv.split('=', 1) for kv in a.set)})
    last20, reached, sps, t0 = {}, {}, {}, time.time()
    for seed in a.seeds:
        res = train_ppo(make_env_fn('CartPole-v1'), cfg, n_envs=a.n_envs, total_steps=a.steps, seed=seed)
        last20[seed], reached[seed], sps[seed] = round(res.mean_return(WINDOW), 1), first_reached(res.episode_returns, res.episode_steps), round(res.sps)
        print(f"seed {seed}: last-20 mean {last20[seed]}, first reached 475 at {reached[seed]}, {sps[seed]} SPS", file=sys.stderr)
    print(json.dumps({'benchmark': 'ppo_cartpole', 'env': 'CartPole-v1', 'preset': a.preset, 'steps': a.steps, 'n_envs': a.n_envs,
                      'last20_mean': last20, 'first_step_mean20_ge_475': reached, 'sps': sps,
                      'seeds_final_ge_475': sum(v >= TARGET for v in last20.values()), 'seeds_reached_475': sum(v is not None for v in reached.values()),
                      'n_seeds': len(a.seeds), 'wall_s': round(time.time() - t0), 'config': asdict(cfg),
                      'torch': torch.__version__, 'gymnasium': gym.__version__, 'cpu': platform.processor() or platform.machine(),
                      'cpus': os.cpu_count(), 'threads': a.threads}))

if __name__ == '__main__':
    main()
