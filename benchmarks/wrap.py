"""Forward+backward cost of wrapping a torchvision ResNet-18 (CIFAR stem) with dormant slots, as a ratio to the bare
network measured side by side in one process (interleaved median timing of benchmarks/kasmina.py).

Configs: the bare ResNet-18; a copy of it (the timing noise floor: identical models); the same weights wrapped with a
DORMANT slot after each of layer1..layer4 (goal: <= 1.03x); and, for scale, one conv_enhance seed in TRAINING (the
incubator) at layer2. Timed twice, interleaved: wall-clock ms and process CPU ms (the second is less disturbed by
other processes on a shared machine; the copy's ratio shows how far from 1.0 noise alone moves a ratio). Prints one JSON line.
Run: .venv/bin/python benchmarks/wrap.py [--batch 16] [--rounds 15] [--iters 1] [--threads 1]
"""
import argparse, copy, json, os, platform, sys, time
import torch
from esper.io import seed_everything
from esper.contracts.stages import SeedStage
from esper.kasmina.host import MorphogeneticModel
from esper.kasmina.hosts import resnet18
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kasmina as kasmina_bench  # the sibling benchmark's median_ms and gates

POINTS = ['layer1', 'layer2', 'layer3', 'layer4']


def wrapped(net, shape, stage=None):
    "A copy of `net` wrapped with a slot after every layer; slot 1 (layer2) holds a conv_enhance seed at `stage`."
    m = MorphogeneticModel.wrap(copy.deepcopy(net), at=POINTS, example_input=torch.zeros(2, *shape), gate_config=kasmina_bench.OPEN)
    if stage is not None:
        m.slots[1].germinate('conv_enhance', 0)
        while m.slots[1].stage != stage: assert m.slots[1].advance(0).passed
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--iters', type=int, default=1)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); seed_everything(0)
    shape = (3, 32, 32)
    net = resnet18(10).train()
    configs = {'bare_resnet18': net, 'bare_copy': copy.deepcopy(net),  # the copy: how far two identical models' timings differ
               'dormant_4_slots': wrapped(net, shape), 'incubator_conv_enhance_layer2': wrapped(net, shape, SeedStage.TRAINING)}
    wall = kasmina_bench.median_ms(configs, a.batch, a.rounds, a.iters, shape=shape)
    cpu = kasmina_bench.median_ms(configs, a.batch, a.rounds, a.iters, shape=shape, clock=time.process_time)
    ratio = lambda med: {k: round(med[k] / med['bare_resnet18'], 4) for k in configs if k != 'bare_resnet18'}
    ratios, cpu_ratios = ratio(wall), ratio(cpu)
    print(json.dumps({'benchmark': 'wrap.fwd_bwd', 'host': 'torchvision resnet18, CIFAR stem', 'batch': a.batch, 'input': list(shape),
                      'slots_at': POINTS, 'threads': a.threads, 'rounds': a.rounds, 'iters': a.iters,
                      'bare_ms': round(wall['bare_resnet18'], 2), 'ratio_vs_bare': ratios, 'bare_cpu_ms': round(cpu['bare_resnet18'], 2),
                      'cpu_time_ratio_vs_bare': cpu_ratios, 'dormant_goal': 1.03, 'dormant_ok': ratios['dormant_4_slots'] <= 1.03,
                      'dormant_ok_cpu_time': cpu_ratios['dormant_4_slots'] <= 1.03, 'load_avg_1m': round(os.getloadavg()[0], 2),
                      'cpu_count': os.cpu_count(), 'torch': torch.__version__,
                      'cpu': platform.processor() or platform.machine()}))


if __name__ == '__main__':
    main()
