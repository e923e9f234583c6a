"""Seconds per epoch of the trainer (default preset, standard telemetry) vs a plain loop training the bare host
on the same data with the same optimizer settings, side by side in one process. The ratio is the machinery's
overhead (goal ≤ 1.2). Run: .venv/bin/python benchmarks/trainer.py [--epochs 2] [--data-limit N]"""
import argparse, json, platform, time
import torch
import torch.nn.functional as F
from esper.io import seed_everything
from esper.config import RunConfig
from esper.schedules import one_cycle
from esper.trainer import Trainer
from esper.data import batches
from esper.kasmina.host import HostCNN
from esper.nissa.output import NissaHub, MemoryBackend

def plain_epoch(host, opt, data, cfg, gen, step0, total) -> int:
    "One epoch of a textbook loop: same batches, schedule and optimizer, nothing else."
    host.train(); step = step0
    for x, y in batches(data.train_x, data.train_y, cfg.batch_size, shuffle=True, generator=gen):
        for g in opt.param_groups: g['lr'] = one_cycle(step, total, cfg.lr, cfg.warmup_frac)
        loss = F.cross_entropy(host(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); step += 1
    host.eval()
    with torch.no_grad(): host(data.val_x).argmax(1)  # the same validation pass the trainer makes
    return step

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--data-limit', type=int)
    a = ap.parse_args()
    cfg = RunConfig.preset('default', telemetry='standard', epochs=a.epochs, data_limit=a.data_limit)
    tr = Trainer(cfg, NissaHub([MemoryBackend()])); tr.reset()
    gen = seed_everything(0)
    host = HostCNN(tr.data.in_channels, tr.data.n_classes, widths=cfg.widths, slots_after=())
    opt = torch.optim.SGD(host.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    step, total = 0, cfg.epochs * tr.steps_per_epoch
    t_tr, t_plain = [], []
    for e in range(cfg.epochs):  # alternate, so drifts in machine load hit both sides alike
        t0 = time.perf_counter(); tr.step(0); t_tr.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); step = plain_epoch(host, opt, tr.data, cfg, gen, step, total); t_plain.append(time.perf_counter() - t0)
    print(json.dumps({'benchmark': 'trainer', 'preset': 'default', 'telemetry': 'standard', 'epochs': cfg.epochs,
                      'train_images': len(tr.data.train_y), 'trainer_s_per_epoch': round(min(t_tr), 3),
                      'plain_s_per_epoch': round(min(t_plain), 3), 'overhead_ratio': round(min(t_tr) / min(t_plain), 3),
                      'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()}))
