"The learned-Tamiyo study's commands end to end: the schedule search, parallel episode generation, evaluation in the env."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from esper.simic.episodes import load_episodes
from esper.simic.search import eval_jobs, run_study_jobs

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'WANDB_MODE': 'disabled'}

def esper(*args, cwd):
    r = subprocess.run([sys.executable, '-m', 'esper.cli', *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def test_search_finds_a_grid_schedule_and_continues(tmp_path):
    args = ['search', '--preset', 'tiny', '--epochs', 3, '--variants', 'base,narrow', '--grid-epochs', '0,1', '--grid-blueprints', 'norm',
            '--seeds', 2, '--seeds0', 1, '--workers', 1, '--out', tmp_path / 's']
    esper(*args, cwd=tmp_path)
    res = json.loads((tmp_path / 's' / 'search.json').read_text())
    assert set(res) == {'base', 'narrow'}
    for v, r in res.items():
        assert r['best'] in ('scheduled:', 'scheduled:norm@0/0', 'scheduled:norm@1/0')
        assert [len(x['val_acc']) for x in r['rounds']] == [3, 2]       # halving: 3 candidates, then the better 2
    n = len(list((tmp_path / 's').rglob('records/*.json')))
    assert n == 2 * (3 + 2)                                              # round 2 reuses round 1's seed
    again = esper(*args, cwd=tmp_path)
    assert len(list((tmp_path / 's').rglob('records/*.json'))) == n and ' seed ' not in again.stdout  # nothing replayed
    assert json.loads((tmp_path / 's' / 'search.json').read_text()) == res

def test_generate_in_parallel_equals_one_worker(tmp_path):
    base = ['generate', '--preset', 'tiny', '--epochs', 3, '--episodes', 4, '--variants', 'base,narrow', '--behaviour', 'random_schedule',
            '--behaviour', 'heuristic:0.3', '--seed', 5, '--runs-dir', tmp_path / 'runs']
    esper(*base, '--workers', 1, '--out', tmp_path / 'one', cwd=tmp_path)
    esper(*base, '--workers', 2, '--out', tmp_path / 'two', cwd=tmp_path)
    a, b = load_episodes(tmp_path / 'one'), load_episodes(tmp_path / 'two')
    assert a.n_episodes == b.n_episodes == 4 and a.obs.shape[1] == 27 + 2  # the variant block is part of the observation
    for k in ('obs', 'actions', 'rewards', 'next_obs', 'terminals'):
        np.testing.assert_array_equal(getattr(a, k).numpy(), getattr(b, k).numpy())
    meta = json.loads((tmp_path / 'two' / 'meta.json').read_text())
    assert [e['policy'] for e in meta['episodes']] == ['random_schedule', 'heuristic+eps0.3'] * 2
    assert meta['feature_names'][-2:] == ['variant=base', 'variant=narrow']

def test_evaluation_is_paired_and_reproducible(tmp_path):
    jobs = eval_jobs(dict(preset='tiny', epochs=3, variants=['base', 'few_data']), {'static': 'static', 'norm@0': 'scheduled:norm@0'}, [3], ['base', 'few_data'])
    recs = run_study_jobs(jobs, tmp_path / 'a', backend=2)
    again = run_study_jobs(jobs, tmp_path / 'b', backend=1)
    assert recs == again                                                 # worker processes change nothing
    assert {(r['label'], r['variant'], r['seed']) for r in recs} == {(l, v, 3) for l in ('static', 'norm@0') for v in ('base', 'few_data')}
    static = {r['variant']: r for r in recs if r['label'] == 'static'}
    assert all(r['actions'] == [0, 0, 0] for r in static.values())      # static: WAIT at every epoch
    assert static['base']['test_acc'] != static['few_data']['test_acc']  # the variants are different tasks
