"""The growth study: every mechanism against the static frontier on the default preset (paired seeds).

Run from the repository root: `.venv/bin/python results/growth/run.py --phase screen` (3 seeds, every arm), then
`--phase final` (10 seeds, the static frontier, the baselines and the winner of the screen), then `--phase long`
(the 20-epoch variant: its own static frontier, the heuristic and the winner on 5 seeds). Every finished run is
kept in results/growth/<study>/records/; rerunning continues where it stopped. Each study writes summary.json,
table.md and frontier.png beside its records; results/growth/summary.json gathers both.
"""
import argparse, functools, os
from pathlib import Path
os.environ.setdefault('WANDB_MODE', 'disabled')
from esper.io import write_json
from dataclasses import replace
from esper.config import RunConfig
from esper.kasmina.slot import GateConfig
from esper.simic.evaluate import PolicySpec
from esper.simic.frontier import HOST_BUDGETS, static_arms, run_study, load_records, summarize_study, format_study, plot_frontier

HERE = Path(__file__).resolve().parent
OUT, LONG_OUT = HERE / 'default', HERE / 'long20'
GATES = GateConfig(min_training_epochs=1, blend_epochs=2, min_shadowing_epochs=1, min_probation_epochs=1)  # the study's lifecycle
BASE = RunConfig.preset('default', lr_schedule='one_cycle', gate=GATES)  # pinned: the study's task whatever the preset's defaults become
LONG = replace(BASE, epochs=20)
LIVE = replace(GATES, start='live')
NARROW = replace(LIVE, seed_widths=(0.25, 0.25, 0.5, 0.5, 1.))  # live, born at a quarter of its hidden units
NARROWER = replace(LIVE, seed_widths=(0.25, 0.25, 0.25, 0.5, 0.5))  # ... and at half until it is a fossil
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
          PolicySpec('heuristic+live+skip2+wsd', 'heuristic', {'gate': LIVE, 'incubator_every': 2, 'lr_schedule': 'wsd'}, H0),
          PolicySpec('heuristic+live+narrow', 'heuristic', {'gate': NARROW}, H0),
          PolicySpec('heuristic+live+narrow+wsd', 'heuristic', {'gate': NARROW, 'lr_schedule': 'wsd'}, H0),
          PolicySpec('heuristic+live+narrower+wsd', 'heuristic', {'gate': NARROWER, 'lr_schedule': 'wsd'}, H0)]
FINAL_OF = {'heuristic+bottleneck': 'static_bottleneck@10ep', 'heuristic+2slots': 'static_2slots@10ep', '*': 'static_grown@10ep'}
HOST = 'static_host@10ep'

SCREEN_SEEDS, FINAL_SEEDS, LONG_SEEDS = [0, 1, 2], list(range(10)), list(range(5))
FRONTIER = [s for s in STATIC if s.label.split('@')[0] in ('static_host', 'static_grown')]
# the grown model also trained with the warmup-stable-decay schedule, so an arm that uses it meets static models that do too
STATIC_WSD = [PolicySpec(f'static_grown_wsd@{e}ep', 'static', {'epochs': e, 'static_seeds': ('conv_enhance',), 'lr_schedule': 'wsd'}) for e in (8, 10)]

def progress(r):
    print(f"{r['label']} seed {r['seed']}: test {100 * r['test_acc']:.2f}%, {r['train_flops'] / 1e12:.2f} TFLOPs, {r['wall_s']:.0f} s", flush=True)

def summarize(out, specs, seeds, host, final_of):
    "The study's summary and records over the seeds on which every arm has finished (the paired comparison needs them all); (None, []) if none has."
    have = {(r['label'], r['seed']) for r in load_records(out, [s.label for s in specs], seeds)}
    seeds = [sd for sd in seeds if all((s.label, sd) in have for s in specs)]
    if not seeds: return None, []
    recs = load_records(out, [s.label for s in specs], seeds)
    return {**summarize_study(recs, host, final_of), 'seeds': seeds}, recs

@functools.cache  # the screen is finished before any phase asks for it
def winners(k=2):
    "The k growth arms with the best screen margin among those whose final size is the grown model's (the frontier's own curve)."
    screen, _ = summarize(OUT, STATIC + GROWTH, SCREEN_SEEDS, HOST, FINAL_OF)
    margin = {a['label']: a['frontier_margin'] for a in screen['arms'] if 'frontier_margin' in a}
    same_final = [s for s in GROWTH if s.label not in FINAL_OF and s.label not in ('heuristic', 'periodic')]
    return sorted(same_final, key=lambda s: -margin[s.label])[:k]

def final_specs():
    "The 10-seed comparison: the frontier, the baselines, the screen's two best arms, and earlier finalists kept in the folder."
    kept = {r['label'] for r in load_records(OUT, seeds=FINAL_SEEDS[-1:])}
    extra = [s for s in GROWTH + [PolicySpec('heuristic+wsd+seedlr2', 'heuristic', {'lr_schedule': 'wsd', 'seed_lr_mult': 2.0}, H0)] if s.label in kept]
    return _unique(FRONTIER + STATIC_WSD + GROWTH[:2] + winners() + extra)

def _unique(specs):
    seen, out = set(), []
    for s in specs:
        if s.label not in seen: seen.add(s.label); out.append(s)
    return out

def final_winner():
    "The arm of the final with the largest frontier margin (10 seeds): the one the 20-epoch variant runs, and the default preset's."
    final, _ = summarize(OUT, final_specs(), FINAL_SEEDS, HOST, FINAL_OF)
    best = max((a for a in final['arms'] if a['label'] in {s.label for s in winners()}), key=lambda a: a['frontier_margin'])
    return next(s for s in GROWTH if s.label == best['label'])

def long_specs():
    """The 20-epoch variant: its own static frontier (host at 20, 26 and 32 epochs, the grown model at 10-20), the heuristic and the winner.
    (The host's 40-epoch budget is left out to fit the session: its curve is flat from 20 epochs on, about a point below the grown
    model's, and 40 epochs sit at 1.06x the static final model's FLOPs, beyond every growth arm; seed 0 has it.)"""
    return static_arms(LONG, host_budgets=HOST_BUDGETS[:3]) + [GROWTH[0], final_winner()]

def write(out, summary, recs, title):
    write_json(out / 'summary.json', summary)
    (out / 'table.md').write_text(format_study(summary) + '\n')
    import matplotlib; matplotlib.use('Agg')
    fig = plot_frontier(recs, summary, HOST if out == OUT else 'static_host@20ep'); fig.axes[0].set_title(title, fontsize=9)
    fig.savefig(out / 'frontier.png', dpi=200); fig.savefig(out / 'frontier.pdf', metadata={'CreationDate': None})  # no timestamp: a rerun that changes nothing changes no file
    print(f"\n{title}\n" + format_study(summary), flush=True)

def report():
    "Every table: the screen (3 seeds), the final (10 seeds), the 20-epoch variant (5 seeds); results/growth/summary.json gathers them."
    note = 'test accuracy in %; FLOP ratios of mean training FLOPs; deltas and margins paired over the seeds'
    cmd = '.venv/bin/python results/growth/run.py --phase screen && ... --phase final && ... --phase long'
    screen, srecs = summarize(OUT, STATIC + GROWTH, SCREEN_SEEDS, HOST, FINAL_OF)
    final, frecs = summarize(OUT, final_specs(), FINAL_SEEDS, HOST, FINAL_OF)
    long, lrecs = summarize(LONG_OUT, long_specs(), LONG_SEEDS, 'static_host@20ep', 'static_grown@20ep')
    top = {'preset': 'default', 'epochs': BASE.epochs, 'command': cmd, 'note': note, **(final or {'arms': []}),
           'screen': screen, 'long20': long}
    if final: write(OUT, {**final, 'note': note}, frecs, f"default preset, {len(final['seeds'])} paired seeds")
    if long: write(LONG_OUT, {**long, 'note': note}, lrecs, f"20-epoch variant, {len(long['seeds'])} paired seeds")
    if screen: (OUT / 'screen.md').write_text(format_study(screen) + '\n'); print('\nscreen (3 seeds)\n' + format_study(screen))
    write_json(HERE / 'summary.json', top)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--phase', choices=['screen', 'final', 'long', 'report'], default='screen')
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    if a.phase == 'screen': run_study(BASE, STATIC + GROWTH, SCREEN_SEEDS, OUT, workers=a.workers, progress=progress)
    if a.phase == 'final': run_study(BASE, final_specs(), FINAL_SEEDS, OUT, workers=a.workers, progress=progress)
    if a.phase == 'long': run_study(LONG, long_specs(), LONG_SEEDS, LONG_OUT, workers=a.workers, progress=progress)
    report()

if __name__ == '__main__': main()
