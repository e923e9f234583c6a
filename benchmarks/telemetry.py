"""Telemetry overhead: one training epoch (+ evaluation) of a small CNN with each Nissa profile vs telemetry off.
Modes run interleaved in one process, `--rounds` times, single-threaded; each epoch is timed in process CPU time
(robust to other jobs sharing the cores) and the ratio is min(profile) / min(off).
Telemetry per epoch: DiagnosticTracker.after_backward every step, record_batch on every eval batch, sharpness on one
batch (diagnostic), end_epoch, and a NissaHub with JSONL + memory backends (W&B disabled, console off: not a TTY).
`ratio_off_again` (telemetry off vs off) shows the noise floor of the measurement.
Goals: minimal <= 1.02, standard <= 1.05, diagnostic <= 1.15.
Run: .venv/bin/python benchmarks/telemetry.py [--rounds 5] [--n 6144] [--batch 128]  → one JSON line."""
import argparse, json, os, platform, statistics, tempfile, time
from pathlib import Path
import torch
from torch import nn
import torch.nn.functional as F
from esper.io import seed_everything
from esper.nissa.config import TelemetryConfig
from esper.nissa.tracker import DiagnosticTracker
from esper.nissa.output import make_hub

def small_cnn() -> nn.Module:
    "A host like DESIGN.md §10: three conv blocks of widths 8/16/32 on 28×28 inputs, 10 classes."
    block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(1, 8), block(8, 16), block(16, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

def epoch(model, opt, x, y, xv, yv, bs, tracker=None, hub=None, ep=0):
    t0 = time.process_time()   # CPU time of this process: robust to other jobs on a shared machine
    model.train()
    for i in range(0, len(x), bs):
        loss = F.cross_entropy(model(x[i:i + bs]), y[i:i + bs])
        opt.zero_grad(set_to_none=True); loss.backward()
        if tracker: tracker.after_backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        correct = 0
        for i in range(0, len(xv), bs):
            out = model(xv[i:i + bs]); correct += (out.argmax(1) == yv[i:i + bs]).sum().item()
            if tracker: tracker.record_batch(out, yv[i:i + bs])
    metrics = {'train/loss': loss.item(), 'val/acc': correct / len(xv)}
    if tracker:
        if tracker.config.sharpness: tracker.sharpness(model, F.cross_entropy, x[:bs], y[:bs])
        metrics |= tracker.end_epoch(ep, metrics)
        hub.log_metrics(ep, metrics, tracker.narrative())
    return time.process_time() - t0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=5); ap.add_argument('--n', type=int, default=4096)
    ap.add_argument('--batch', type=int, default=128); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    seed_everything(0); torch.set_num_threads(a.threads)
    x, y = torch.randn(a.n, 1, 28, 28), torch.randint(0, 10, (a.n,))
    xv, yv = torch.randn(a.n // 4, 1, 28, 28), torch.randint(0, 10, (a.n // 4,))
    modes = ['off', 'minimal', 'standard', 'diagnostic', 'off_again']  # off_again: the noise floor (A/A)
    runs, times, tmp = {}, {m: [] for m in modes}, Path(tempfile.mkdtemp())
    for m in modes:
        model = small_cnn(); opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        tr = hub = None
        if not m.startswith('off'):
            cfg = TelemetryConfig.from_profile(m, wandb_mode='disabled', console=False)
            groups = {'block0': list(model[0].parameters()), 'block1': list(model[1].parameters()),
                      'block2': list(model[2].parameters()), 'head': list(model[5].parameters())}
            tr, hub = DiagnosticTracker(groups, 10, cfg), make_hub(cfg, tmp / m, {'mode': m}, m, 1, a.rounds + 1)
        runs[m] = (model, opt, tr, hub)
        epoch(model, opt, x[:a.batch * 4], y[:a.batch * 4], xv[:a.batch], yv[:a.batch], a.batch, tr, hub)  # warm-up
    for r in range(a.rounds):
        for m in modes[r % len(modes):] + modes[:r % len(modes)]:   # rotate the order so no mode always runs first
            model, opt, tr, hub = runs[m]
            times[m].append(epoch(model, opt, x, y, xv, yv, a.batch, tr, hub, ep=r + 1))
    for _, _, _, hub in runs.values():
        if hub: hub.close()
    med = {m: min(t) for m, t in times.items()}
    out = {'benchmark': 'telemetry', 'torch': torch.__version__, 'cpu': platform.processor() or platform.machine(),
           'threads': a.threads, 'rounds': a.rounds, 'samples': a.n, 'batch': a.batch,
           'epoch_cpu_s_off': round(med['off'], 3),
           **{f'ratio_{m}': round(med[m] / med['off'], 3) for m in modes[1:]},
           'epoch_cpu_s': {m: [round(t, 3) for t in ts] for m, ts in times.items()},
           'goals': {'minimal': 1.02, 'standard': 1.05, 'diagnostic': 1.15}}
    out['meets_goals'] = all(out[f'ratio_{m}'] <= g for m, g in out['goals'].items())
    print(json.dumps(out))

if __name__ == '__main__':
    main()
