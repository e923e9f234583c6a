"""Per-task overhead of the Ray backend against the local process pool (`esper.backends`), for tiny units.

Two kinds of unit, each run through `Backend.imap` on both backends side by side in this one process, in
interleaved rounds (median over rounds):
- `noop`: a function that returns at once (`abs`), in batches of `--small` and `--large` units. The marginal
  cost of one more task is (t(large) - t(small)) / (large - small); what a batch costs beyond that is the
  fixed cost of one `imap` call (for the pool: spawning its workers; for Ray: submitting into a running session).
- `tiny_run`: `--runs` whole runs of the `tiny` preset (`esper.simic.evaluate.run_job`, 1 epoch, static policy),
  with the same run in this process as the compute reference.
Both backends get `--workers` CPUs: a pool of that many processes, a local Ray instance with that many CPUs
(started once, `ray_init_s`; its workers are warmed by one batch first). Prints one JSON line.

    .venv/bin/python benchmarks/backends.py [--workers 2] [--rounds 3] [--small 20] [--large 200] [--runs 8]
"""
import argparse, json, os, platform, statistics, time
import torch
torch.set_num_threads(1)
import ray
from esper.backends import Backend, connect
from esper.config import RunConfig
from esper.simic.evaluate import Job, PolicySpec, run_job

def wall(b:Backend, fn, items) -> float:
    "Seconds for `b` to run every item (all results received)."
    t0 = time.perf_counter(); n = sum(1 for _ in b.imap(fn, items)); assert n == len(items)
    return time.perf_counter() - t0

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--workers', type=int, default=2); ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--small', type=int, default=20); ap.add_argument('--large', type=int, default=200)
    ap.add_argument('--runs', type=int, default=8)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    pool, rb = Backend('local', a.workers), Backend('ray', a.workers)
    t0 = time.perf_counter(); connect(rb); ray_init = time.perf_counter() - t0
    jobs = [Job(PolicySpec('static', 'static', {'epochs': 1}), s, RunConfig.preset('tiny').to_dict()) for s in range(a.runs)]
    wall(rb, abs, range(a.workers * 2)); wall(rb, run_job, jobs[:a.workers])   # warm Ray's workers (imports done once per worker)
    t = {k: [] for k in ('pool_small', 'pool_large', 'ray_small', 'ray_large', 'pool_runs', 'ray_runs', 'inproc_runs')}
    for _ in range(a.rounds):  # interleaved, so load drifts hit both backends alike
        for name, b in (('pool', pool), ('ray', rb)):
            t[f'{name}_small'].append(wall(b, abs, range(a.small))); t[f'{name}_large'].append(wall(b, abs, range(a.large)))
            t[f'{name}_runs'].append(wall(b, run_job, jobs))
        t['inproc_runs'].append(wall(Backend(threads=1), run_job, jobs))
    m = {k: statistics.median(v) for k, v in t.items()}
    per_task = {n: (m[f'{n}_large'] - m[f'{n}_small']) / (a.large - a.small) for n in ('pool', 'ray')}
    fixed = {n: m[f'{n}_small'] - a.small * per_task[n] for n in ('pool', 'ray')}
    ms = lambda s: round(1000 * s, 2)
    out = {'benchmark': 'backends', 'workers': a.workers, 'rounds': a.rounds, 'cpu': platform.processor() or platform.machine(),
           'cores': os.cpu_count(), 'torch': torch.__version__, 'ray': ray.__version__, 'loadavg_1m_before': round(load, 2),
           'ray_init_s': round(ray_init, 2),
           'noop': {'small': a.small, 'large': a.large,
                    'pool_per_task_ms': ms(per_task['pool']), 'ray_per_task_ms': ms(per_task['ray']),
                    'per_task_ratio_ray_vs_pool': round(per_task['ray'] / per_task['pool'], 2),
                    'pool_fixed_s': round(fixed['pool'], 3), 'ray_fixed_s': round(fixed['ray'], 3),
                    'pool_small_s': round(m['pool_small'], 3), 'ray_small_s': round(m['ray_small'], 3)},
           'tiny_run': {'runs': a.runs, 'in_process_s_per_run': round(m['inproc_runs'] / a.runs, 3),
                        'pool_s_per_run': round(m['pool_runs'] / a.runs, 3), 'ray_s_per_run': round(m['ray_runs'] / a.runs, 3),
                        'ratio_ray_vs_pool': round(m['ray_runs'] / m['pool_runs'], 2)},
           'command': 'python benchmarks/backends.py ' + ' '.join(f'--{k} {v}' for k, v in vars(a).items())}
    print(json.dumps(out))

if __name__ == '__main__': main()
