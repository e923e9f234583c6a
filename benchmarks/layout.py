"""Does channels_last or torch.compile make the `small` task's training step cheaper on this CPU?

The model of one `small` env step with a live seed: HostCNN widths 4/8/16 on 1x28x28, a conv_enhance seed
BLENDING at the slot after block 1, batch 128. Forward+backward of four variants measured side by side in one
process, interleaved round by round (`benchmarks/kasmina.py`'s median_ms): eager (today), eager channels_last,
torch.compile, torch.compile + channels_last. Prints one JSON line with ratios to eager (< 1 is faster) and the
compile time. Run: .venv/bin/python benchmarks/layout.py [--rounds 15] [--threads 1]
"""
import argparse, json, platform, sys, time
from pathlib import Path
import torch
from torch import nn
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kasmina import model_at, median_ms, fwd_bwd_ms
from esper.io import seed_everything
from esper.contracts.stages import SeedStage
from esper.kasmina.host import HostCNN


class ChannelsLast(nn.Module):
    "The model with its weights and its input in channels_last memory format."
    def __init__(self, m): super().__init__(); self.m = m.to(memory_format=torch.channels_last)
    def forward(self, x): return self.m(x.contiguous(memory_format=torch.channels_last))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); seed_everything(0)
    host = HostCNN(1, 10, widths=(4, 8, 16), slots_after=(1,))
    configs = {'eager': model_at(host, SeedStage.BLENDING, slot=0), 'channels_last': ChannelsLast(model_at(host, SeedStage.BLENDING, slot=0))}
    compile_s = {}
    for name, wrap in (('compiled', lambda m: m), ('compiled_channels_last', ChannelsLast)):
        t = time.perf_counter()
        m = torch.compile(wrap(model_at(host, SeedStage.BLENDING, slot=0)))
        fwd_bwd_ms(m, torch.randn(a.batch, 1, 28, 28), torch.randint(0, 10, (a.batch,)), 1)  # compile now, not inside the timing
        compile_s[name] = round(time.perf_counter() - t, 1); configs[name] = m
    med = median_ms(configs, a.batch, a.rounds, a.iters)
    print(json.dumps({'bench': 'layout', 'task': 'small (widths 4/8/16, 1x28x28, conv_enhance BLENDING at slot 0)', 'batch': a.batch,
                      'threads': a.threads, 'rounds': a.rounds, 'eager_ms': round(med['eager'], 3),
                      'ratio_vs_eager': {k: round(v / med['eager'], 3) for k, v in med.items() if k != 'eager'},
                      'compile_s': compile_s, 'torch': torch.__version__, 'cpu': platform.processor() or platform.machine()}))


if __name__ == '__main__':
    main()
