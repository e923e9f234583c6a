"The offline-RL commands end to end in subprocesses: esper generate → esper iql → esper train / esper evaluate."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from esper.contracts.actions import n_actions
from esper.contracts.signals import feature_names, n_features
from esper.simic.episodes import episode_files, load_episodes
from esper.config import RunConfig

ESPER = [sys.executable, '-m', 'esper.cli']
# one torch thread: on a shared, loaded machine two threads make IQL updates ~20x slower
ENV = {**os.environ, 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1'}
S = RunConfig.preset('tiny').n_slots
DEFAULT_MIX = ['heuristic+eps0.1', 'heuristic+eps0.3', 'periodic+eps0.1', 'random']

def esper(*args):
    return subprocess.run([*ESPER, *map(str, args)], capture_output=True, text=True, timeout=300, env=ENV)

def ok(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return r

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Three episodes of the default behaviour mix on the tiny task, seeded from 100."
    d = tmp_path_factory.mktemp('offline') / 'episodes'
    r = ok(esper('generate', '--preset', 'tiny', '--episodes', 3, '--seed', 100, '--out', d, '--runs-dir', d.parent / 'runs'))
    assert 'outputs:' in r.stdout and '[3/3]' in r.stdout
    return d

@pytest.fixture(scope='module')
def policy(data):
    p = data.parent / 'iql_tiny.pt'
    r = ok(esper('iql', '--data', data, '--preset', 'tiny', '--steps', 50, '--out', p, '--runs-dir', data.parent / 'runs'))
    assert '18 transitions from 3 episodes' in r.stdout and str(p) in r.stdout
    return p

def test_generate_writes_readable_episodes(data):
    ds = load_episodes(data)
    assert ds.n_episodes == 3 and ds.obs_dim == n_features(S) and ds.n_actions == n_actions(S)
    assert ds.behaviours == DEFAULT_MIX[:3]
    assert (ds.episode_lengths == RunConfig.preset('tiny').epochs).all()  # one step per epoch
    assert ds.obs.abs().max() <= 1 and torch.isfinite(ds.obs).all()     # the env's guarded observation
    assert ds.masks[torch.arange(len(ds)), ds.actions].all()             # every logged action was valid
    meta = json.loads((data / 'meta.json').read_text())
    assert meta['feature_names'] == list(feature_names(S)) and len(meta['episodes']) == 3

def test_generate_logs_the_epoch_limit_as_termination(data):
    ds = load_episodes(data)  # the terminal bonus pays out the final accuracy: nothing follows the last epoch
    assert int(ds.terminals.sum()) == ds.n_episodes and not ds.truncated.any()

def test_generate_again_appends(data, tmp_path):
    d = tmp_path / 'eps'
    import shutil; shutil.copytree(data, d)
    before = [f.read_bytes() for f in episode_files(d)]
    ok(esper('generate', '--preset', 'tiny', '--episodes', 1, '--seed', 200, '--behaviour', 'random', '--out', d, '--runs-dir', tmp_path / 'runs'))
    files = episode_files(d)
    assert [f.name for f in files] == [f'ep_{i:05d}.npz' for i in range(4)]
    assert [f.read_bytes() for f in files[:3]] == before                 # old episodes untouched
    ds = load_episodes(d)
    assert ds.n_episodes == 4 and ds.behaviours == DEFAULT_MIX[:3] + ['random']

def test_iql_policy_file(policy):
    ck = torch.load(policy, weights_only=True)
    assert ck['format'] == 'esper.iql/1' and ck['name'] == 'iql' and ck['config']['cql_alpha'] == 0
    assert ck['obs_dim'] == n_features(S) and ck['n_actions'] == n_actions(S)

def test_cql_alpha_flag_makes_a_cql_policy(data, tmp_path):
    ok(esper('iql', '--data', data, '--preset', 'tiny', '--steps', 10, '--cql-alpha', 0.5, '--out', tmp_path / 'c.pt', '--runs-dir', tmp_path))
    ck = torch.load(tmp_path / 'c.pt', weights_only=True)
    assert ck['name'] == 'cql' and ck['config']['cql_alpha'] == 0.5

def test_train_accepts_the_policy(policy, tmp_path):
    r = ok(esper('train', '--preset', 'tiny', '--policy', policy, '--runs-dir', tmp_path, '--quiet'))
    assert 'test accuracy' in r.stdout
    res = json.loads(next(tmp_path.glob('*/result.json')).read_text())
    assert res['policy'] == 'iql' and res['test_acc'] is not None and not res['interrupted']

def test_evaluate_accepts_the_policy(policy, tmp_path):
    out = tmp_path / 'eval'
    r = ok(esper('evaluate', '--preset', 'tiny', '--policies', f'static,{policy}', '--seeds', 0, '--out', out))
    recs = json.loads((out / 'records.json').read_text())
    assert [x['label'] for x in recs] == ['static', 'iql_tiny'] and all(x['seed'] == 0 for x in recs)
    assert all(0 <= x['test_acc'] <= 1 for x in recs)
    assert '| iql_tiny | 1 |' in (out / 'table.md').read_text() and (out / 'comparison.png').stat().st_size > 0

@pytest.mark.parametrize('args, words', [
    (['iql', '--data', '/nonexistent/episodes'], ['/nonexistent/episodes']),
    (['generate', '--preset', 'tiny', '--episodes', 1, '--behaviour', 'nonsense:2'], ['nonsense:2', 'heuristic']),
    (['generate', '--preset', 'tiny', '--episodes', 1, '--behaviour', 'heuristic:2'], ['epsilon', '[0, 1]']),
    (['iql', '--data', '.', '--preset', 'tiny'], ['meta.json']),
])
def test_bad_input_is_one_line_exit_2(args, words, tmp_path):
    r = subprocess.run([*ESPER, *map(str, args)], capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert not [f for f in tmp_path.rglob('*') if f.is_file()]  # no episode, meta.json or policy written
