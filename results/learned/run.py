"""The learned-Tamiyo study: PPO, IQL and CQL against the best fixed schedule on a mix of task variants (paired seeds).

Run from the repository root, phase by phase (each keeps what it finished; rerunning continues where it stopped):

    .venv/bin/python results/learned/run.py --phase search     # best fixed schedule per variant (successive halving, training seeds)
    .venv/bin/python results/learned/run.py --phase ppo        # esper ppo, 2,000 episodes on the variant mix
    .venv/bin/python results/learned/run.py --phase generate   # esper generate, 1,000 episodes of a behaviour mix
    .venv/bin/python results/learned/run.py --phase offline    # esper iql: IQL and CQL on those episodes
    .venv/bin/python results/learned/run.py --phase evaluate   # every policy on 10 unseen seeds per variant
    .venv/bin/python results/learned/run.py --phase report     # summary.json, table.md, figures

Writes results/learned/: summary.json ({"rows": [...]}), table.md, search.json, the policy files, the learning
curves and the figures. Long runs (the PPO run and the episodes) live under runs/learned/.
"""
import argparse, json, os, shutil, subprocess, sys
from pathlib import Path
os.environ.setdefault('WANDB_MODE', 'offline'); os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
from esper.io import write_json
from esper.contracts.actions import action_names
from esper.contracts.stages import SeedStage
from esper.simic.search import schedule_grid, successive_halving, eval_jobs, run_study_jobs, compare, format_rows

HERE = Path(__file__).resolve().parent
ROOT, RUNS = HERE.parents[1], HERE.parents[1] / 'runs' / 'learned'
ESPER = [str(ROOT / '.venv' / 'bin' / 'esper')]
VARIANTS = ['base', 'narrow', 'few_data']
PRESET, POOL = 'small', 64
REWARD = ['--reward-preset', 'ppo', '--reward-baseline', 'static', '--seed-pool', str(POOL)]
ENV = dict(preset=PRESET, variants=VARIANTS, time_limit='terminate')  # evaluation: the env the learners trained on (reward unused)
TRAIN_SEEDS = list(range(16))             # the schedule search (inside the PPO/generate seed pool 0..63)
TEST_SEEDS = list(range(100_000, 100_010))  # unseen by every learner and by the search
PPO_CMD = ESPER + ['ppo', '--task-preset', PRESET, '--variants', ','.join(VARIANTS), *REWARD, '--total-steps', '16000',
                   '--wandb', 'offline', '--runs-dir', str(RUNS)]
GEN_CMD = ESPER + ['generate', '--preset', PRESET, '--episodes', '1000', '--variants', ','.join(VARIANTS),
                   '--behaviour', 'random_schedule', '--behaviour', 'heuristic:0.2', '--behaviour', 'random_schedule',
                   '--behaviour', 'periodic:0.2', '--behaviour', 'random', *REWARD, '--seed', '0', '--workers', '2',
                   '--out', str(RUNS / 'episodes'), '--runs-dir', str(RUNS)]
OFFLINE = {'iql': ['--cql-alpha', '0'], 'cql': ['--cql-alpha', '0.5']}
progress = lambda r: print(f"{r['label']} {r['variant']} seed {r['seed']}: val {100 * r['val_acc']:.2f}%", flush=True)

def search(workers):
    "Successive halving over the schedule grid, per variant; writes search.json."
    out = {}
    for v in VARIANTS:
        res = successive_halving(ENV, schedule_grid(range(6)), TRAIN_SEEDS, HERE / "search" / v, variant=v, backend=workers, progress=progress)
        out[v] = res; print(f"{v}: best {res['best']}", flush=True)
    write_json(HERE / 'search.json', out)
    return out

def ppo_run():
    "The PPO run folder (finished or not) under runs/learned."
    runs = sorted(RUNS.glob(f'ppo__{PRESET}__0__*'), key=lambda p: p.name)
    return next((r for r in reversed(runs) if (r / 'checkpoint.pt').exists()), None)

def ppo():
    run = ppo_run()
    if run is None or not (run / 'history.json').exists():
        subprocess.run(PPO_CMD + (['--resume', str(run)] if run else []), check=True)
        run = ppo_run()
    shutil.copy(run / 'checkpoint.pt', HERE / 'ppo.pt'); shutil.copy(run / 'history.json', HERE / 'ppo_history.json')

def generate():
    meta = RUNS / 'episodes' / 'meta.json'
    have = len(json.loads(meta.read_text())['episodes']) if meta.exists() else 0
    if have < 1000: sys.exit(f"{have} of 1000 episodes in {RUNS / 'episodes'}: run {' '.join(GEN_CMD)} (it appends; start from an empty folder)")

def offline():
    "IQL and CQL on the logged episodes; the policies and their iql/* curves go to results/learned/."
    for name, flags in OFFLINE.items():
        if (HERE / f'{name}.pt').exists(): continue
        runs = RUNS / f'offline_{name}'
        subprocess.run(ESPER + ['iql', '--data', str(RUNS / 'episodes'), '--preset', 'morpho', '--steps', '5000', *flags,
                                '--out', str(HERE / f'{name}.pt'), '--runs-dir', str(runs)], check=True)
        events = sorted(runs.glob('iql__*/events.jsonl'))[-1].read_text().splitlines()
        curves = [{'step': e['epoch'], **e['data']} for e in map(json.loads, events) if e['type'] == 'iql_update']
        write_json(HERE / f'{name}_curves.json', curves, indent=None)

def policies(best):
    "Every arm of the comparison: label -> behaviour (or variant -> behaviour)."
    p = {'static': 'static', 'periodic': 'periodic', 'heuristic': 'heuristic', 'random': 'random',
         'best_fixed': {v: best[v]['best'] for v in VARIANTS}}
    p.update({f'fixed[{v}]': best[v]['best'] for v in VARIANTS})  # each variant's winner on every variant
    p.update({n: str(HERE / f'{n}.pt') for n in ('ppo', 'iql', 'cql') if (HERE / f'{n}.pt').exists()})
    return p

def evaluate(workers):
    best = json.loads((HERE / 'search.json').read_text())
    jobs = eval_jobs(ENV, policies(best), TEST_SEEDS, VARIANTS)
    run_study_jobs(jobs, HERE / 'eval', workers, progress)

def report():
    best = json.loads((HERE / 'search.json').read_text())
    pol = policies(best)
    recs = run_study_jobs(eval_jobs(ENV, pol, TEST_SEEDS, VARIANTS), HERE / 'eval')  # all finished: reads them back
    learned = [n for n in ('ppo', 'iql', 'cql') if n in pol]
    rows = compare(recs, paired=learned + [f'fixed[{v}]' for v in VARIANTS])
    write_json(HERE / 'summary.json', {'rows': rows, 'preset': PRESET, 'variants': VARIANTS, 'test_seeds': TEST_SEEDS,
                                       'best_fixed': {v: best[v]['best'] for v in VARIANTS},
                                       'note': 'test accuracy in %; intervals are 95% paired (same run seed and variant), in points',
                                       'command': 'python results/learned/run.py --phase search|ppo|generate|offline|evaluate|report'})
    (HERE / 'table.md').write_text(format_rows(rows) + '\n')
    print(format_rows(rows))
    figures(recs, learned)

def figures(recs, learned):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    names = action_names(1)
    fig, axes = plt.subplots(1, len(learned), figsize=(4.2 * len(learned), 3.2), squeeze=False)
    for ax, n in zip(axes[0], learned):  # what each learned policy does: its action at each epoch, over seeds and variants
        acts = np.array([r['actions'] for r in recs if r['label'] == n])
        freq = np.stack([(acts == a).mean(0) for a in range(len(names))])
        ax.imshow(freq, aspect='auto', cmap='Blues', vmin=0, vmax=1)
        ax.set(title=f'{n}: actions by epoch', xlabel='epoch', yticks=range(len(names)), yticklabels=[x.replace('GERMINATE_', 'GERM_') for x in names])
    fig.tight_layout(); fig.savefig(HERE / 'actions.png', dpi=200); plt.close(fig)
    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(4.2 * len(VARIANTS), 3.2), squeeze=False)
    cmap = plt.get_cmap('tab20', len(SeedStage))
    for ax, v in zip(axes[0], VARIANTS):  # the PPO policy's lifecycle: slot 0's stage at each epoch, one row per unseen seed
        st = np.array([[e[0] for e in r['stage_by_epoch']] for r in recs if r['label'] == 'ppo' and r['variant'] == v])
        im = ax.imshow(st, aspect='auto', cmap=cmap, vmin=-0.5, vmax=len(SeedStage) - 0.5, interpolation='nearest')
        ax.set(title=f'PPO on {v}', xlabel='epoch', ylabel='unseen seed', xticks=range(st.shape[1]), xticklabels=range(1, st.shape[1] + 1))
    cb = fig.colorbar(im, ax=axes[0].tolist(), ticks=range(len(SeedStage))); cb.ax.set_yticklabels([s.name for s in SeedStage], fontsize=7)
    fig.suptitle('slot stage by epoch, one row per unseen seed', y=1.02); fig.savefig(HERE / 'ppo_lifecycle.png', dpi=200, bbox_inches='tight'); plt.close(fig)
    h = json.loads((HERE / 'ppo_history.json').read_text())
    ret = np.array(h['returns']); k = 50
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(np.arange(k, len(ret) + 1), np.convolve(ret, np.ones(k) / k, 'valid'))
    a1.set(title='PPO: episode return (mean of 50)', xlabel='episode', ylabel='return (×10 = points vs static twin)')
    up = h['updates']
    a2.plot(np.arange(1, len(up) + 1), [u['ppo/explained_variance'] for u in up])
    a2.set(title="PPO: critic's explained variance", xlabel='update (64 env steps each)', ylabel='explained variance', ylim=(-1, 1))
    fig.tight_layout(); fig.savefig(HERE / 'ppo_curves.png', dpi=200); plt.close(fig)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--phase', required=True, choices=['search', 'ppo', 'generate', 'offline', 'evaluate', 'report'])
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    {'search': lambda: search(a.workers), 'ppo': ppo, 'generate': generate, 'offline': offline,
     'evaluate': lambda: evaluate(a.workers), 'report': report}[a.phase]()

if __name__ == '__main__': main()
