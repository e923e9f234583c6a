"""Per-batch cost of a seed in each stage under each growth mechanism, as a ratio of the bare host (side by side, one process).

Mechanisms: the blueprint (conv_enhance, bottleneck, separable) and the cheaper incubator (a TRAINING seed that skips
the batch, as `RunConfig.incubator_every` makes it do on k-1 batches in k). Also the analytic FLOP ratio of each, so the
measured time can be read against the work. Prints one JSON line.
Run: .venv/bin/python benchmarks/growth.py [--batch 256] [--rounds 9] [--threads 1]
"""
import argparse, json, os, platform, sys
import torch
from esper.io import seed_everything
from esper.contracts.stages import SeedStage
from esper.kasmina.host import HostCNN
from esper.kasmina.blueprints import count_flops
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kasmina as kasmina_bench  # the sibling benchmark's model_at

BLUEPRINTS = ('conv_enhance', 'bottleneck', 'separable')
STAGES = (SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.FOSSILIZED)

def model_at(host, bp, stage, incubating=True):
    "A model around a copy of `host` whose slot holds a `bp` seed at `stage` (benchmarks/kasmina.py's), incubating or not."
    m = kasmina_bench.model_at(host, stage, bp, slot=0); m.slots[0].incubating = incubating
    return m

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=256); ap.add_argument('--rounds', type=int, default=9)
    ap.add_argument('--iters', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); seed_everything(0)
    host = HostCNN(1, 10, widths=(8, 16, 32), slots_after=(1,))
    configs = {'bare_host': host, 'TRAINING_skipped': model_at(host, 'conv_enhance', SeedStage.TRAINING, incubating=False),
               **{f'{bp}/{st.name}': model_at(host, bp, st) for bp in BLUEPRINTS for st in STAGES}}
    med = kasmina_bench.median_ms(configs, a.batch, a.rounds, a.iters)
    base = count_flops(host, (1, 28, 28))
    print(json.dumps({'benchmark': 'growth.fwd_bwd', 'batch': a.batch, 'widths': [8, 16, 32], 'slot': 'after block 1 (16 ch, 7x7)',
                      'threads': a.threads, 'rounds': a.rounds, 'bare_host_ms': round(med['bare_host'], 3),
                      'time_ratio_vs_bare': {k: round(med[k] / med['bare_host'], 3) for k in configs if k != 'bare_host'},
                      'flops_ratio_vs_bare': {k: round(count_flops(m, (1, 28, 28)) / base, 3) for k, m in configs.items() if k != 'bare_host'},
                      'torch': torch.__version__, 'cpu': platform.processor() or platform.machine()}))

if __name__ == '__main__': main()
