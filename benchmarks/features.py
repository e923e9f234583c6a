"""Microseconds per `TrainingSignals.to_tensor()` (the policy's hot path), for S = 1 and S = 3 slots.
Run: .venv/bin/python benchmarks/features.py  → one JSON line."""
import json, timeit
import torch
from esper.contracts.stages import SeedStage
from esper.contracts.signals import TrainingSignals, SlotSignals

def signals(n_slots: int) -> TrainingSignals:
    slot = SlotSignals(SeedStage.BLENDING, 0.5, 0.01, 2, 1.2, 'conv_enhance')
    return TrainingSignals(epoch=5, max_epochs=20, train_loss=0.4, val_loss=0.45, train_acc=0.86, val_acc=0.84,
                           best_val_acc=0.85, grad_norm=0.7, param_ratio=2.0, since_germination=3, slots=(slot,) * n_slots)

def us_per_call(fn, number=20000, repeat=5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6

if __name__ == '__main__':
    torch.set_num_threads(1)
    out = {'benchmark': 'features', 'torch': torch.__version__}
    for S in (1, 3):
        sig = signals(S); buf = torch.empty(len(sig.values()))
        out[f'to_tensor_us_S{S}'] = round(us_per_call(sig.to_tensor), 2)
        out[f'to_tensor_out_us_S{S}'] = round(us_per_call(lambda: sig.to_tensor(out=buf)), 2)
        out[f'to_numpy_us_S{S}'] = round(us_per_call(sig.to_numpy), 2)
    print(json.dumps(out))
