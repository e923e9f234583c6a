"""The growth study: every mechanism against the static frontier on the default preset (paired seeds).

Run from the repository root: `.venv/bin/python results/growth/run.py --phase screen` (3 seeds, every arm), then
`--phase final` (10 seeds, the static frontier, the baselines and the winner of the screen), then `--phase long`
(the 20-epoch variant: its own static frontier, the heuristic and the winner on 5 seeds). Every finished run is
kept in results/growth/<study>/records/; rerunning continues where it stopped. Each study writes summary.json,
table.md and frontier.png beside its records; results/growth/summary.json gathers both.
"""
import argparse, json, os, sys
from pathlib import Path
os.environ.setdefault('WANDB_MODE', 'disabled')
from esper.io import write_json
from dataclasses import replace
from esper.config import RunConfig
from esper.kasmina.slot import GateConfig
from esper.simic.evaluate import PolicySpec
from esper.simic.frontier import static_arms, run_study, load_records, summarize_study, format_study, plot_frontier

HERE = Path(__file__).resolve().parent
OUT, LONG_OUT = HERE / 'default', HERE / 'long20'
GATES = GateConfig(min_training_epochs=1, blend_epochs=2, min_shadowing_epochs=1, min_probation_epochs=1)  # the study's lifecycle
BASE = RunConfig.preset('default', lr_schedule='one_cycle', gate=GATES)  # pinned: the study's task whatever the preset's defaults become
LONG = replace(BASE, epochs=20)
LIVE = replace(GATES, start='live')
MENU_BOTTLENECK = ('bottleneck', 'attention', 'norm', 'depthwise')
STATIC = static_arms(BASE) + [PolicySpec('static_bottleneck@10ep', 'static', {'static_seeds': ('bottleneck',)}),
                              PolicySpec('static_2slots@10ep', 'static', {'slots_after': (0, 1), 'static_seeds': ('conv_enhance', 'conv_enhance')})]
H0 = {'germinate_at_epoch': 0}  # the heuristic as the study ran it: the first seed at epoch 0
GROWTH = [PolicySpec('heuristic', 'heuristic', {}, H0),
          PolicySpec('periodic', 'periodic'),
          PolicySpec('heuristic+incubator4', 'heuristic', {'incubator_every': 4}, H0),
          PolicySpec('heuristic+wsd', 'heuristic', {'lr_schedule': 'wsd'}, H0),
          PolicySpec('heuristic+seedlr2', 'heuristic', {'seed_lr_mult': 2.0}, H0),
          PolicySpec('heuristic+normlr', 'heuristic', {'seed_lr_rule': 'norm_ratio'}, H0),
          PolicySpec('heuristic+bottleneck', 'heuristic', {'blueprints': MENU_BOTTLENECK}, H0),
          PolicySpec('heuristic+2slots', 'heuristic', {'slots_after': (0, 1)}, {**H0, 'max_active_seeds': 2}),
          PolicySpec('heuristic+live@2', 'heuristic', {'gate': LIVE}, {'germinate_at_epoch': 2}),
          PolicySpec('heuristic+live@2+wsd', 'heuristic', {'gate': LIVE, 'lr_schedule': 'wsd'}, {'germinate_at_epoch': 2}),
          PolicySpec('heuristic+live+skip2', 'heuristic', {'gate': LIVE, 'incubator_every': 2}, H0),
          PolicySpec('heuristic+live+skip4', 'heuristic', {'gate': LIVE, 'incubator_every': 4}, H0),
          PolicySpec('heuristic+live+skip2+wsd', 'heuristic', {'gate': LIVE, 'incubator_every': 2, 'lr_schedule': 'wsd'}, H0)]
FINAL_OF = {'heuristic+bottleneck': 'static_bottleneck@10ep', 'heuristic+2slots': 'static_2slots@10ep', '*': 'static_grown@10ep'}
HOST = 'static_host@10ep'

def combo(winners):
    "One arm that combines the overrides of the screen's best arms."
    over = {}
    for w in winners: over.update(w.overrides)
    kw = {}
    for w in winners: kw.update(w.kwargs)
    return PolicySpec('heuristic+' + '+'.join(w.label.split('+', 1)[1] for w in winners), 'heuristic', over, kw)

def report(specs, seeds):
    "Summary, table and plot over the seeds on which every arm has finished (the paired comparison needs them all)."
    have = {(r['label'], r['seed']) for r in load_records(OUT, [s.label for s in specs], seeds)}
    seeds = [sd for sd in seeds if all((s.label, sd) in have for s in specs)]
    recs = load_records(OUT, [s.label for s in specs], seeds)
    summary = summarize_study(recs, HOST, FINAL_OF)
    summary.update(preset='default', base_epochs=BASE.epochs, seeds=seeds, command='.venv/bin/python results/growth/run.py --phase screen|final',
                   note='test accuracy in %; FLOP ratios of mean training FLOPs; deltas and margins paired over the seeds')
    write_json(OUT / 'summary.json', summary)
    (OUT / 'table.md').write_text(format_study(summary) + '\n')
    import matplotlib; matplotlib.use('Agg')
    plot_frontier(recs, summary, HOST).savefig(OUT / 'frontier.png', dpi=150)
    print(format_study(summary), flush=True)
    return summary

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--phase', choices=['screen', 'final', 'report'], default='screen')
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    progress = lambda r: print(f"{r['label']} seed {r['seed']}: test {100 * r['test_acc']:.2f}%, {r['train_flops'] / 1e12:.2f} TFLOPs, {r['wall_s']:.0f} s", flush=True)
    if a.phase == 'screen':
        specs, seeds = STATIC + GROWTH, [0, 1, 2]
        run_study(BASE, specs, seeds, OUT, workers=a.workers, progress=progress)
    else:
        screen = {r['label']: r for r in summarize_study(load_records(OUT, [s.label for s in STATIC + GROWTH], [0, 1, 2]), HOST, FINAL_OF)['arms']}
        mech = sorted((s for s in GROWTH if '+' in s.label), key=lambda s: -screen[s.label]['frontier_margin'])
        helpful = [s for s in mech if screen[s.label]['frontier_margin'] > screen['heuristic']['frontier_margin']
                   and 'slots_after' not in s.overrides and 'blueprints' not in s.overrides]  # combine what shares one final size
        chosen = mech[:1] + ([combo(helpful[:2])] if len(helpful) >= 2 else [])
        finals = {FINAL_OF.get(c.label, FINAL_OF['*']) for c in chosen}
        specs = [s for s in STATIC if s.label in finals or s.label.split('@')[0] in ('static_host', 'static_grown')] + GROWTH[:2] + chosen
        seeds = list(range(10))
        if a.phase == 'final': run_study(BASE, specs, seeds, OUT, workers=a.workers, progress=progress)
    report(specs, seeds)

if __name__ == '__main__': main()
