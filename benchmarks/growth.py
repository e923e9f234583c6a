"""Per-batch cost of a seed in each stage under each growth mechanism, as a ratio of the bare host (side by side, one process).

Mechanisms: the blueprint (conv_enhance, bottleneck, separable); the start (the isolated incubator, or a live start);
a trial batch the seed skips (as `RunConfig.incubator_every` makes it do on k-1 batches in k: in TRAINING for the
incubator, in every stage before FOSSILIZED for a live start); and progressive width (`GateConfig.seed_widths`
(0.25, 0.5, 1, 1, 1): a quarter of the hidden units at germination, half in TRAINING). The analytic FLOP ratio of each
is printed beside the measured time, so the time can be read against the work. Prints one JSON line.
Run: .venv/bin/python benchmarks/growth.py [--batch 256] [--rounds 9] [--threads 1]
"""
import argparse, json, os, platform, sys
from dataclasses import replace
import torch
from esper.io import seed_everything
from esper.contracts.stages import SeedStage
from esper.kasmina.host import HostCNN
from esper.kasmina.blueprints import count_flops
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kasmina as kasmina_bench  # the sibling benchmark's gates and timer

BLUEPRINTS = ('conv_enhance', 'bottleneck', 'separable')
STAGES = (SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.SHADOWING, SeedStage.PROBATIONARY, SeedStage.FOSSILIZED)
MECHANISMS = {'incubator': {}, 'incubator+skip': {'skip': True}, 'live': {'start': 'live'}, 'live+skip': {'start': 'live', 'skip': True},
              'narrow': {'seed_widths': (0.25, 0.5, 1., 1., 1.)}, 'live+narrow': {'start': 'live', 'seed_widths': (0.25, 0.5, 1., 1., 1.)}}

def model_at(host, bp, stage, start='incubator', seed_widths=(), skip=False):
    "A model around a copy of `host` whose slot holds a `bp` seed walked to `stage` under the given mechanism."
    m = kasmina_bench.model_at(host, stage, bp, slot=0, gate=replace(kasmina_bench.OPEN, start=start, seed_widths=seed_widths))
    m.slots[0].incubating = not skip
    return m

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=256); ap.add_argument('--rounds', type=int, default=9)
    ap.add_argument('--iters', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); seed_everything(0)
    host = HostCNN(1, 10, widths=(8, 16, 32), slots_after=(1,))
    configs = {'bare_host': host,
               **{f'conv_enhance/{mech}/{st.name}': model_at(host, 'conv_enhance', st, **kw) for mech, kw in MECHANISMS.items() for st in STAGES},
               **{f'{bp}/incubator/{st.name}': model_at(host, bp, st) for bp in BLUEPRINTS[1:] for st in STAGES}}
    med = kasmina_bench.median_ms(configs, a.batch, a.rounds, a.iters)
    base = count_flops(host, (1, 28, 28))
    print(json.dumps({'benchmark': 'growth.fwd_bwd', 'batch': a.batch, 'widths': [8, 16, 32], 'slot': 'after block 1 (16 ch, 7x7)',
                      'threads': a.threads, 'rounds': a.rounds, 'bare_host_ms': round(med['bare_host'], 3),
                      'time_ratio_vs_bare': {k: round(med[k] / med['bare_host'], 3) for k in configs if k != 'bare_host'},
                      'flops_ratio_vs_bare': {k: round(count_flops(m, (1, 28, 28)) / base, 3) for k, m in configs.items() if k != 'bare_host'},
                      'torch': torch.__version__, 'cpu': platform.processor() or platform.machine()}))

if __name__ == '__main__': main()
