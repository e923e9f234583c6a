"""Offline IQL on CartPole-v1: learn from the log of a mediocre behaviour and beat it.
Behaviour: a hand-written controller (push toward the pole's lean, angle + 0.5·angular velocity) mixed
with uniform random actions at ε = 0.5. IQL trains on its logged episodes only; both are then evaluated
greedily on the same 20 fresh seeds. One core.
Run: .venv/bin/python benchmarks/iql_cartpole.py [--steps N] [--episodes N] [--seed S]  → one JSON line."""
import argparse, json, platform, tempfile, time
import gymnasium as gym
import numpy as np
import torch
from esper.simic.episodes import EpisodeWriter, EpsilonGreedy, collect_episodes, load_episodes
from esper.simic.iql import IQLConfig, train_iql

def lean(obs, mask, rng):
    "Push the cart toward where the pole is falling."
    return int(obs[2] + 0.5 * obs[3] > 0)

def main(steps:int, episodes:int, seed:int, epsilon:float, n_eval:int) -> dict:
    torch.set_num_threads(1)
    env = gym.make('CartPole-v1')
    behaviour = EpsilonGreedy(lean, epsilon, seed=seed)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        collect_episodes(env, behaviour, episodes, EpisodeWriter(d, 4, 2), seed=seed)
        ds = load_episodes(d)
        t_collect = time.perf_counter() - t0
    res = train_iql(ds, IQLConfig.preset('cartpole'), steps=steps, seed=seed)
    eval_seed = 10_000 + seed  # fresh episodes, the same for both policies
    behaviour_eval = collect_episodes(env, EpsilonGreedy(lean, epsilon, seed=eval_seed), n_eval, seed=eval_seed)
    iql_eval = collect_episodes(env, res.policy, n_eval, seed=eval_seed)
    last = res.history[-1]
    return {'benchmark': 'iql_cartpole', 'behaviour': behaviour.name, 'behaviour_mean_return': round(float(np.mean(behaviour_eval)), 1),
            'behaviour_std_return': round(float(np.std(behaviour_eval)), 1), 'iql_mean_return': round(float(np.mean(iql_eval)), 1),
            'iql_std_return': round(float(np.std(iql_eval)), 1), 'dataset_mean_return': round(float(ds.episode_returns.mean()), 1),
            'n_eval_episodes': n_eval, 'n_episodes': ds.n_episodes, 'n_transitions': len(ds), 'steps': steps,
            'updates_per_s': round(res.updates_per_s, 1), 'collect_s': round(t_collect, 1), 'final_mean_q': round(last['iql/mean_q'], 2),
            'seed': seed, 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()}

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=4000)
    p.add_argument('--episodes', type=int, default=200)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--epsilon', type=float, default=0.5)
    p.add_argument('--n-eval', type=int, default=20)
    a = p.parse_args()
    print(json.dumps(main(a.steps, a.episodes, a.seed, a.epsilon, a.n_eval)))
