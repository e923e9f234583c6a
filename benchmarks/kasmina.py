"""Forward+backward cost of Kasmina's slots, as ratios to the bare host measured side by side in one process.

Configs: the bare HostCNN; the same host with a slot after every block, all DORMANT (goal: <= 3% over bare);
and one conv_enhance seed at the 16-channel slot in each stage. Prints one JSON line.
Run: .venv/bin/python benchmarks/kasmina.py [--batch 256] [--rounds 15] [--threads 1]
"""
import argparse, copy, json, platform, statistics, time
import torch
import torch.nn.functional as F
from esper.io import seed_everything
from esper.contracts.stages import SeedStage
from esper.kasmina.host import HostCNN, MorphogeneticModel
from esper.kasmina.slot import GateConfig

STAGES = [SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.SHADOWING, SeedStage.PROBATIONARY, SeedStage.FOSSILIZED]
OPEN = GateConfig(min_training_epochs=0, blend_epochs=2, min_shadowing_epochs=0, min_probation_epochs=0,
                  g4_max_harm=1., g5_min_contribution=-1.)


def model_at(host, stage, bp='conv_enhance', slot=1, gate=OPEN):
    "A model around a copy of `host`; slot `slot` holds a `bp` seed walked through `gate` to `stage` (None: every slot DORMANT)."
    m = MorphogeneticModel(copy.deepcopy(host), gate)
    if stage is None: return m
    s = m.slots[slot]
    s.germinate(bp, 0)
    while s.stage != stage:
        if s.stage == SeedStage.BLENDING and s.alpha < 1:
            if stage == SeedStage.BLENDING: break
            s.step_epoch(0); continue
        if s.stage in (SeedStage.SHADOWING, SeedStage.PROBATIONARY): s.record_contribution(0.5, 0.5)
        assert s.advance(0).passed
    return m


def fwd_bwd_ms(model, x, y, iters, clock=time.perf_counter):
    t = clock()
    for _ in range(iters):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return 1e3 * (clock() - t) / iters


def median_ms(configs, batch, rounds, iters, shape=(1, 28, 28), clock=time.perf_counter):
    "Median forward+backward ms (of `clock`: wall by default) of each model on one (batch, *shape) batch, the configs interleaved round by round."
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    for m in configs.values(): fwd_bwd_ms(m, x, y, 2)  # warm up
    times = {k: [] for k in configs}
    for _ in range(rounds):  # interleaved, so drift and neighbours' load hit every config alike
        for k, m in configs.items(): times[k].append(fwd_bwd_ms(m, x, y, iters, clock))
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); seed_everything(0)
    host = HostCNN(1, 10, widths=(8, 16, 32), slots_after=(0, 1, 2))
    configs = {'bare_host': host, 'dormant_3_slots': model_at(host, None), **{s.name: model_at(host, s) for s in STAGES}}
    med = median_ms(configs, a.batch, a.rounds, a.iters)
    ratios = {k: round(med[k] / med['bare_host'], 4) for k in configs if k != 'bare_host'}
    print(json.dumps({'benchmark': 'kasmina.fwd_bwd', 'batch': a.batch, 'input': [1, 28, 28], 'widths': [8, 16, 32],
                      'threads': a.threads, 'rounds': a.rounds, 'iters': a.iters, 'bare_host_ms': round(med['bare_host'], 3),
                      'ratio_vs_bare': ratios, 'dormant_goal': 1.03, 'dormant_ok': ratios['dormant_3_slots'] <= 1.03,
                      'seed': 'conv_enhance at slot 1 (16 ch, 7x7)', 'torch': torch.__version__,
                      'cpu': platform.processor() or platform.machine()}))


if __name__ == '__main__':
    main()
