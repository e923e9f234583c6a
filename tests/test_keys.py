"The metric keys are an API: every key a trainer, PPO or IQL run logs is in `esper.nissa.keys.KEYS`, and every row of it is logged."
from dataclasses import replace
import pytest
import torch
from esper.contracts.actions import ActionOp, encode_action
from esper.nissa.config import TelemetryConfig
from esper.nissa.keys import KEYS, key_matches
from esper.nissa.output import METRIC_EVENTS, NissaHub, MemoryBackend, make_hub, read_wandb_run
from esper.simic.env import make_env_fn
from esper.simic.episodes import EpisodeWriter, ToyMaskedEnv, UniformRandom, collect_episodes, load_episodes
from esper.simic.iql import IQLConfig, train_iql
from esper.simic.ppo import PPOConfig, train_ppo
from esper.config import RunConfig
from esper.run import run
from esper.tamiyo.baselines import make_policy
from esper.trainer import Trainer

torch.set_num_threads(1)

def metric_keys(hub) -> set[str]:
    "Every key of every metric event the hub's memory saw."
    return {k for e in hub.memory.events if e.type in METRIC_EVENTS for k in e.data}

def wandb_keys(run_dir) -> set[str]:
    "Every key an offline W&B run logged (history and summary), without W&B's own `_step`, `_runtime`, …"
    got = read_wandb_run(run_dir)
    return {k for row in [*got['history'], got['summary']] for k in row if not k.startswith('_')}

@pytest.fixture(scope='module')
def logged(tmp_path_factory) -> dict[str, set[str]]:
    d, out = tmp_path_factory.mktemp('keys'), {}
    # (a) the trainer, diagnostic telemetry, a seed germinated and advanced; to memory and to an offline W&B run
    tel = TelemetryConfig.from_profile('diagnostic', wandb_mode='offline', console=False)
    hub = make_hub(tel, d / 'trainer', {'preset': 'tiny'}, 'keys-trainer', 1, None)
    try:
        t = Trainer(RunConfig.preset('tiny', telemetry='diagnostic'), hub); t.reset()
        for a in [encode_action(ActionOp.GERMINATE, 0, 'norm'), 0] + [encode_action(ActionOp.ADVANCE, 0)] * 4:
            t.step(a if t.mask()[a] else 0)
        out['trainer'] = metric_keys(hub)
    finally: hub.close()
    out['trainer (W&B)'] = wandb_keys(d / 'trainer')
    # (b) PPO: one update on CartPole-v1, one on the tiny morphogenetic env
    hub = NissaHub([MemoryBackend()])
    train_ppo(make_env_fn('CartPole-v1'), replace(PPOConfig.preset('cartpole'), n_steps=64), n_envs=1, total_steps=64, seed=0, hub=hub)
    out['ppo cartpole'] = metric_keys(hub)
    hub = NissaHub([MemoryBackend()])
    train_ppo(make_env_fn('morpho', preset='tiny', time_limit='terminate'), PPOConfig.preset('morpho', n_steps=6, n_minibatches=2),
              n_envs=1, total_steps=6, seed=0, hub=hub)
    out['ppo morpho'] = metric_keys(hub)
    # (c) IQL on a tiny logged dataset
    collect_episodes(ToyMaskedEnv(), UniformRandom(0), 5, EpisodeWriter(d / 'eps', 5, 4), seed=0)
    hub = NissaHub([MemoryBackend()])
    train_iql(load_episodes(d / 'eps'), IQLConfig.preset('tiny'), steps=60, seed=0, hub=hub)
    out['iql'] = metric_keys(hub)
    # (d) a whole tiny run into a run folder: its summary, figures and stage table reach W&B
    run(RunConfig.preset('tiny', epochs=2), make_policy('periodic', n_slots=1, every=1), runs_root=d / 'runs',
        telemetry=TelemetryConfig.from_profile('minimal', wandb_mode='offline', console=False))
    out['run (W&B)'] = wandb_keys(next((d / 'runs').iterdir()))
    return out

def test_every_run_logged_something(logged):
    assert all(logged.values()), {k: len(v) for k, v in logged.items()}
    assert {'actions/GERMINATE_NORM', 'actions/WAIT'} <= logged['ppo morpho'] and 'actions/0' in logged['ppo cartpole']
    assert {'grad/seed0_norm', 'slot0/stage'} <= logged['trainer'] and 'lifecycle/stage_changes' in logged['trainer (W&B)']

def test_every_logged_key_is_in_the_table_once(logged):
    patterns = [p for p, _, _ in KEYS]
    unlisted = {src: sorted(k for k in keys if not any(key_matches(k, p) for p in patterns)) for src, keys in logged.items()}
    assert not any(unlisted.values()), f"logged keys missing from esper.nissa.keys.KEYS: {unlisted}"
    twice = {k: [p for p in patterns if key_matches(k, p)] for keys in logged.values() for k in keys}
    assert all(len(v) == 1 for v in twice.values()), {k: v for k, v in twice.items() if len(v) != 1}

def test_every_row_of_the_table_is_logged(logged):
    every = set().union(*logged.values())
    dead = [p for p, _, _ in KEYS if not any(key_matches(k, p) for k in every)]
    assert not dead, f"KEYS rows that no run logs: {dead}"
