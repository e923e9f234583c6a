"Cheaper decisions: one validation pass shares the features before each slot with the counterfactual passes, with identical numbers."
import torch
from esper.contracts.stages import SeedStage as S
from esper.config import RunConfig
from esper.trainer import Trainer
from test_kasmina import make, batch, BPS
import pytest

@pytest.mark.parametrize('bp', BPS)
@pytest.mark.parametrize('stage', [S.TRAINING, S.BLENDING, S.PROBATIONARY])
def test_one_pass_contributions_equal_three_passes_float64(bp, stage):
    a, b = make(bp, stage), make(bp, stage)
    x, y = batch(n=16)
    assert a.measure_contributions(x, y, one_pass=True) == b.measure_contributions(x, y, one_pass=False)
    sa, sb = a.slots[0].metrics, b.slots[0].metrics
    assert (sa.contribution, sa.val_acc_live, sa.val_acc_bypassed) == (sb.contribution, sb.val_acc_live, sb.val_acc_bypassed)
    assert sa.train_loss == sb.train_loss or (sa.train_loss != sa.train_loss and sb.train_loss != sb.train_loss)

def _history(one_pass, preset='tiny', **kw):
    tr = Trainer(RunConfig.preset(preset, slots_after=(0, 1), **kw)); tr.one_pass = one_pass; tr.reset()
    for a in (1, 5, 5, 5, 5, 5): tr.step(a, strict=False)
    return tr, [{k: v for k, v in h.items() if not k.startswith('time/') and k != 'model/eval_flops'} for h in tr.history]

@pytest.mark.parametrize('cb', [256, 100])  # the first validation chunk itself, or a smaller batch measured on its own
def test_one_pass_run_equals_three_pass_run(cb):
    (ta, a), (tb, b) = _history(True, contribution_batch=cb), _history(False, contribution_batch=cb)
    nan = lambda h: {k: (None if v != v else v) for k, v in h.items()}
    assert [nan(h) for h in a] == [nan(h) for h in b]
    assert ta.eval_flops < tb.eval_flops      # the shared prefix is not paid twice
