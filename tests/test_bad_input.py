"""Every bad input to the five commands is one line on stderr, exit code 2, and nothing new on disk.

A table of hand-picked cases by class (output paths, checkpoint and policy files, datasets, episode files,
devices and env ids, values, flags on --resume), then property-based cases (hypothesis) over the CLI
argument space and over corruptions of checkpoint, policy, dataset and episode files.
The commands run in-process (`esper.cli.main`), so a case costs milliseconds unless it must load a dataset.
`python tests/test_bad_input.py` prints the outcome of every case as a table by class."""
import contextlib, gzip, io, json, os, shutil, subprocess, sys, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from esper.cli import main

FASHION = Path('/usr/share/datasets/fashion-mnist')
TINY = ['--preset', 'tiny']

# ---------------------------------------------------------------- fixtures: one good file of every kind

def _run(argv, cwd):
    "`esper.cli.main(argv)` in `cwd` with stdout and stderr captured: (rc or the exception, stderr)."
    err, old = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try: rc = main([str(a) for a in argv])
            except BaseException as e: rc = e  # an escaped exception is a traceback for the user
    finally: os.chdir(old)
    return rc, err.getvalue()

def build_goods(root:Path) -> dict[str, Path]:
    "A finished tiny run, a PPO checkpoint, an IQL policy and an episode folder, made by the commands themselves."
    root.mkdir(parents=True, exist_ok=True)
    steps = [('train', [*TINY, '--epochs', 2, '--quiet', '--wandb', 'disabled', '--runs-dir', root / 'runs']),
             ('ppo', [*TINY, '--task-preset', 'tiny', '--n-envs', 1, '--vector', 'sync', '--total-steps', 16, '--wandb', 'disabled',
                      '--runs-dir', root / 'ppo']),
             ('generate', [*TINY, '--episodes', 2, '--out', root / 'eps', '--runs-dir', root / 'gen']),
             ('iql', [*TINY, '--steps', 5, '--data', root / 'eps', '--out', root / 'iql.pt', '--wandb', 'disabled', '--runs-dir', root / 'iqlruns'])]
    for cmd, argv in steps:
        rc, err = _run([cmd, *argv], root)
        assert rc == 0, (cmd, rc, err)
    run = next((root / 'runs').iterdir()); ppo = next((root / 'ppo').iterdir())
    return {'run': run, 'ppo': ppo, 'iql': root / 'iql.pt', 'eps': root / 'eps'}

@pytest.fixture(scope='session')
def goods(tmp_path_factory):
    return build_goods(tmp_path_factory.mktemp('goods'))

# ---------------------------------------------------------------- a read-only folder that is read-only even for root

@contextlib.contextmanager
def read_only_dir(path:Path):
    "`path` as a read-only folder: a read-only bind mount when we are root and may mount, else chmod 555."
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        src = path.with_name(path.name + '.src'); src.mkdir(exist_ok=True)
        if subprocess.run(['mount', '--bind', '-o', 'ro', str(src), str(path)], capture_output=True).returncode == 0:
            try: yield path
            finally: subprocess.run(['umount', str(path)], capture_output=True)
            return
        pytest.skip('running as root without permission to mount: a chmod-ed folder would still be writable')
    path.chmod(0o555)
    try: yield path
    finally: path.chmod(0o755)

# ---------------------------------------------------------------- corruptions

def _torch_edit(path:Path, fn:Callable[[dict], None]) -> None:
    d = torch.load(path, weights_only=True); fn(d); torch.save(d, path)

def _truncate(path:Path, keep:float=0.5) -> None:
    b = path.read_bytes(); path.write_bytes(b[:int(len(b) * keep)])

def _json_edit(path:Path, fn) -> None:
    d = json.loads(path.read_text()); d = fn(d) or d; path.write_text(json.dumps(d))

def _ck_config(fn):
    "Edit the RunConfig inside a run checkpoint."
    def edit(d):
        c = json.loads(d['config']); c = fn(c) or c; d['config'] = json.dumps(c)
    return edit

def _npz_edit(path:Path, fn) -> None:
    with np.load(path) as z: ep = {k: z[k] for k in z.files}
    fn(ep); np.savez(path, **ep)

def _other_actor(hidden):
    from esper.simic.iql import mlp
    def edit(d): d['actor'] = mlp(d['obs_dim'], hidden, d['n_actions']).state_dict()
    return edit

def _ppo_for_slots(n_slots:int):
    "Rebuild a PPO checkpoint's network for another slot layout (observation and action sizes of `n_slots` slots)."
    from esper.simic.networks import ActorCritic
    from esper.contracts.actions import n_actions
    from esper.contracts.signals import n_features
    def edit(d):
        spec = {**d['net_spec'], 'obs_dim': n_features(n_slots), 'n_actions': n_actions(n_slots)}
        d['net_spec'], d['model'] = spec, ActorCritic(**spec).state_dict()
        d['normalizer'] = {**d['normalizer'], 'mean': torch.zeros(spec['obs_dim']), 'var': torch.ones(spec['obs_dim'])} if isinstance(d['normalizer'], dict) else d['normalizer']
    return edit

def _gz_bad_header(path:Path) -> None:
    path.write_bytes(gzip.compress(b'\x00\x00\x08\x03' + (10 ** 6).to_bytes(4, 'big') * 3 + b'\x00' * 100))

# ---------------------------------------------------------------- the cases

@dataclass
class Case:
    cls: str                       # the class of bad input (the report groups by it)
    name: str
    argv: Callable[['Ctx'], list]  # the command line, from the case's context
    prep: Callable[['Ctx'], None]|None = None  # corrupt the case's copies
    env: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()    # copies of good files the case uses: run, ppo, iql, eps, fashion
    ro: bool = False               # the case needs a read-only folder ctx.ro

@dataclass
class Ctx:
    root: Path                     # the case's working directory: default outputs land here
    run: Path|None = None
    ppo: Path|None = None
    iql: Path|None = None
    eps: Path|None = None
    fashion: Path|None = None
    ro: Path|None = None
    @property
    def file(self) -> Path: return self.root / 'a_file.txt'
    @property
    def runck(self) -> Path: return self.run / 'checkpoint.pt'
    @property
    def ppock(self) -> Path: return self.ppo / 'checkpoint.pt'
    @property
    def ep0(self) -> Path: return self.eps / 'ep_00000.npz'

T = [*TINY, '--quiet', '--wandb', 'disabled']      # esper train
P = [*TINY, '--task-preset', 'tiny', '--n-envs', 1, '--vector', 'sync', '--total-steps', 16, '--wandb', 'disabled']  # esper ppo (morpho)
G = [*TINY, '--episodes', 1]                     # esper generate
I = [*TINY, '--steps', 2, '--wandb', 'disabled']  # esper iql
E = [*TINY, '--policies', 'static', '--seeds', 0]  # esper evaluate
FM = ['--dataset', 'fashion_mnist', '--data-limit', 300, '--val-size', 100]

def _cases() -> list[Case]:
    C = []
    def add(cls, name, argv, prep=None, **kw): C.append(Case(cls, name, argv, prep, **kw))
    # output paths: a file, a folder where a file goes, read-only, a parent that is a file, a folder of something else
    o = 'output path'
    add(o, 'train --runs-dir FILE', lambda c: ['train', *T, '--runs-dir', c.file])
    add(o, 'train --runs-dir FILE/sub', lambda c: ['train', *T, '--runs-dir', c.file / 'sub'])
    add(o, 'train --runs-dir RO', lambda c: ['train', *T, '--runs-dir', c.ro], ro=True)
    add(o, 'ppo --runs-dir FILE', lambda c: ['ppo', *P, '--runs-dir', c.file])
    add(o, 'ppo --runs-dir RO', lambda c: ['ppo', *P, '--runs-dir', c.ro], ro=True)
    add(o, 'generate --out FILE', lambda c: ['generate', *G, '--out', c.file])
    add(o, 'generate --out RO', lambda c: ['generate', *G, '--out', c.ro], ro=True)
    add(o, 'generate --out RO/new', lambda c: ['generate', *G, '--out', c.ro / 'new'], ro=True)
    add(o, 'generate --runs-dir FILE', lambda c: ['generate', *G, '--runs-dir', c.file])
    add(o, 'generate --out a run folder', lambda c: ['generate', *G, '--out', c.run], needs=('run',),
        prep=lambda c: (c.run / 'meta.json').write_text('{"git_sha": "x"}'))
    add(o, 'iql --out DIR', lambda c: ['iql', *I, '--data', c.eps, '--out', c.root], needs=('eps',))
    add(o, 'iql --out RO/p.pt', lambda c: ['iql', *I, '--data', c.eps, '--out', c.ro / 'p.pt'], needs=('eps',), ro=True)
    add(o, 'iql --out FILE/p.pt', lambda c: ['iql', *I, '--data', c.eps, '--out', c.file / 'p.pt'], needs=('eps',))
    add(o, 'iql --runs-dir FILE', lambda c: ['iql', *I, '--data', c.eps, '--runs-dir', c.file], needs=('eps',))
    add(o, 'iql --runs-dir RO', lambda c: ['iql', *I, '--data', c.eps, '--runs-dir', c.ro], needs=('eps',), ro=True)
    add(o, 'evaluate --out FILE', lambda c: ['evaluate', *E, '--out', c.file])
    add(o, 'evaluate --out RO', lambda c: ['evaluate', *E, '--out', c.ro], ro=True)
    add(o, 'evaluate --runs-dir FILE', lambda c: ['evaluate', *E, '--runs-dir', c.file])
    add(o, 'evaluate --runs-dir RO', lambda c: ['evaluate', *E, '--runs-dir', c.ro], ro=True)

    # policy files (train --policy, evaluate --policies) that load safely but hold the wrong content
    p = 'policy file'
    for how, edit in [('missing actor', lambda d: d.pop('actor')), ('missing config', lambda d: d.pop('config')),
                      ('config of another version', lambda d: d['config'].update(temperature=1.0)),
                      ('config with a bad value', lambda d: d['config'].update(hidden=[0])),
                      ('weights of another size', _other_actor((7,))), ('obs_mean of another size', lambda d: d.update(obs_mean=torch.zeros(3))),
                      ('n_actions not an int', lambda d: d.update(n_actions='seven')), ('NaN weights', lambda d: [v.fill_(float('nan')) for v in d['actor'].values()]),
                      ('format only', lambda d: [d.pop(k) for k in list(d) if k != 'format'])]:
        add(p, f'train --policy iql: {how}', lambda c: ['train', *T, '--policy', c.iql, '--runs-dir', c.root / 'runs'],
            lambda c, e=edit: _torch_edit(c.iql, e), needs=('iql',))
    add(p, 'train --policy iql for another slot layout', lambda c: ['train', *T, '--slots', '0,1', '--policy', c.iql], needs=('iql',))
    add(p, 'evaluate --policies iql: weights of another size', lambda c: ['evaluate', *TINY, '--policies', f'static,{c.iql}', '--seeds', 0],
        lambda c: _torch_edit(c.iql, _other_actor((5, 5))), needs=('iql',))
    add(p, 'evaluate --policies iql for another slot layout', lambda c: ['evaluate', *TINY, '--slots', '0,1', '--policies', f'static,{c.iql}', '--seeds', 0], needs=('iql',))
    for how, edit in [('missing net_spec', lambda d: d.pop('net_spec')), ('missing model', lambda d: d.pop('model')),
                      ('missing normalizer', lambda d: d.pop('normalizer')), ('missing action_names', lambda d: d.pop('action_names')),
                      ('net_spec of another version', lambda d: d['net_spec'].update(dropout=0.1)),
                      ('weights of another size', lambda d: d.update(model={k: torch.zeros(3) for k in d['model']})),
                      ('policy for another slot layout', _ppo_for_slots(2)),
                      ('NaN weights', lambda d: [v.fill_(float('nan')) for v in d['model'].values() if v.is_floating_point()])]:
        add(p, f'train --policy ppo: {how}', lambda c: ['train', *T, '--policy', c.ppock, '--runs-dir', c.root / 'runs'],
            lambda c, e=edit: _torch_edit(c.ppock, e), needs=('ppo',))
    add(p, 'train --policy a run checkpoint', lambda c: ['train', *T, '--policy', c.runck], needs=('run',))
    add(p, 'train --policy truncated file', lambda c: ['train', *T, '--policy', c.iql], lambda c: _truncate(c.iql), needs=('iql',))
    add(p, 'train --policy empty file', lambda c: ['train', *T, '--policy', c.iql], lambda c: c.iql.write_bytes(b''), needs=('iql',))
    add(p, 'train --policy a folder', lambda c: ['train', *T, '--policy', c.root])
    add(p, 'train --policy pickle', lambda c: ['train', *T, '--policy', c.file], lambda c: torch.save({'format': 'esper.iql/1', 'x': object()}, c.file))

    # run checkpoints given to train --resume
    r = 'run checkpoint'
    for how, edit in [('missing model', lambda d: d.pop('model')), ('missing config', lambda d: d.pop('config')),
                      ('missing policy', lambda d: d.pop('policy')), ('missing events', lambda d: d.pop('events')),
                      ('config of another version', _ck_config(lambda c: c.update(temperature=1.0))),
                      ('config missing a field', _ck_config(lambda c: c.pop('widths'))),
                      ('config with a bad value', _ck_config(lambda c: c.update(epochs=0))),
                      ('config not JSON', lambda d: d.update(config='{')),
                      ('weights of another size', lambda d: d.update(model={k: torch.zeros(2) for k in d['model']})),
                      ('widths changed under the weights', _ck_config(lambda c: c.update(widths=[5, 9, 9]))),
                      ('slot layout changed under the weights', _ck_config(lambda c: c.update(slots_after=[0, 1]))),
                      ('unknown policy name', lambda d: d.update(policy=json.dumps({'name': 'clever', 'state': None}))),
                      ('epoch not a number', lambda d: d.update(epoch='three')),
                      ('ppo format tag', lambda d: d.update(format='esper.ppo/2'))]:
        add(r, f'train --resume: {how}', lambda c: ['train', '--resume', c.run, '--quiet', '--wandb', 'disabled'],
            lambda c, e=edit: _torch_edit(c.runck, e), needs=('run',))
    add(r, 'train --resume: truncated checkpoint', lambda c: ['train', '--resume', c.run, '--quiet'], lambda c: _truncate(c.runck), needs=('run',))
    add(r, 'train --resume: a folder without a checkpoint', lambda c: ['train', '--resume', c.root, '--quiet'])
    add(r, 'train --resume: the PPO run', lambda c: ['train', '--resume', c.ppo, '--quiet'], needs=('ppo',))
    # PPO checkpoints given to ppo --resume
    for how, edit in [('missing optimizer', lambda d: d.pop('optimizer')), ('missing rng', lambda d: d.pop('rng')),
                      ('missing update', lambda d: d.pop('update')),
                      ('config with a bad value', lambda d: d['config'].update(n_steps=0)),
                      ('weights of another size', lambda d: d.update(model={k: torch.zeros(3) for k in d['model']})),
                      ('policy for another slot layout', _ppo_for_slots(2)),
                      ('episodes not a dict', lambda d: d.update(episodes=[]))]:
        add(r, f'ppo --resume: {how}', lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.ppo],
            lambda c, e=edit: _torch_edit(c.ppock, e), needs=('ppo',))
    add(r, 'ppo --resume: truncated', lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.ppo], lambda c: _truncate(c.ppock), needs=('ppo',))
    add(r, 'ppo --resume: a run checkpoint', lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.run], needs=('run',))
    add(r, 'ppo --resume: an IQL policy', lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.iql], needs=('iql',))
    add(r, 'ppo --resume: no checkpoint', lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.root])

    # datasets: a copy of fashion-mnist with one file broken
    d = 'dataset file'
    for how, edit in [('truncated gzip', lambda f: _truncate(f, 0.3)), ('not gzip', lambda f: f.write_bytes(b'hello, not gzip' * 10)),
                      ('empty', lambda f: f.write_bytes(b'')), ('gzip of a short IDX', _gz_bad_header)]:
        for cmd, argv in [('train', lambda c: ['train', *T, *FM]), ('evaluate', lambda c: ['evaluate', *E, *FM]),
                          ('generate', lambda c: ['generate', *G, *FM]), ('ppo', lambda c: ['ppo', *P, '--task-dataset', 'fashion_mnist', '--task-data-limit', 300, '--task-val-size', 100])]:
            add(d, f'{cmd}: train-images {how}', argv, lambda c, e=edit: e(c.fashion / 'train-images-idx3-ubyte.gz'), needs=('fashion',))

    # episode folders that slip past validation
    e = 'episode file'
    for how, edit in [('0-d actions', lambda c: _npz_edit(c.ep0, lambda z: z.update(actions=np.array(3)))),
                      ('0-d obs', lambda c: _npz_edit(c.ep0, lambda z: z.update(obs=np.array(1.)))),
                      ('0-d rewards', lambda c: _npz_edit(c.ep0, lambda z: z.update(rewards=np.array(1.)))),
                      ('0-d component_names', lambda c: _npz_edit(c.ep0, lambda z: z.update(component_names=np.array('a')))),
                      ('1-d policy', lambda c: _npz_edit(c.ep0, lambda z: z.update(policy=np.array(['a', 'b'])))),
                      ('string actions', lambda c: _npz_edit(c.ep0, lambda z: z.update(actions=np.array(['a'] * len(z['actions']))))),
                      ('NaN rewards', lambda c: _npz_edit(c.ep0, lambda z: z['rewards'].fill(np.nan))),
                      ('a missing key', lambda c: _npz_edit(c.ep0, lambda z: z.pop('masks'))),
                      ('truncated npz', lambda c: _truncate(c.ep0)),
                      ('meta entry without a file', lambda c: c.ep0.unlink()),
                      ('meta entry without a file name', lambda c: _json_edit(c.eps / 'meta.json', lambda m: m['episodes'][0].pop('file'))),
                      ('meta episodes not a list', lambda c: _json_edit(c.eps / 'meta.json', lambda m: m.update(episodes=3))),
                      ('meta without obs_dim', lambda c: _json_edit(c.eps / 'meta.json', lambda m: m.pop('obs_dim'))),
                      ('meta obs_dim a string', lambda c: _json_edit(c.eps / 'meta.json', lambda m: m.update(obs_dim='27'))),
                      ('meta not JSON', lambda c: (c.eps / 'meta.json').write_text('{')),
                      ('meta a list', lambda c: (c.eps / 'meta.json').write_text('[]')),
                      ('meta.json missing', lambda c: (c.eps / 'meta.json').unlink()),
                      ('no episodes', lambda c: [f.unlink() for f in c.eps.glob('ep_*.npz')])]:
        add(e, f'iql --data: {how}', lambda c: ['iql', *I, '--data', c.eps], edit, needs=('eps',))
        if how not in ('no episodes', 'meta.json missing'):
            add(e, f'generate --out (appending): {how}', lambda c: ['generate', *G, '--seed', 5, '--out', c.eps], edit, needs=('eps',))
    add(e, 'generate --out: episodes of another slot layout', lambda c: ['generate', *G, '--slots', '0,1', '--out', c.eps], needs=('eps',))
    add(e, 'iql --data: a file that is not an episode', lambda c: ['iql', *I, '--data', c.file])
    add(e, 'iql --data: missing folder', lambda c: ['iql', *I, '--data', c.root / 'nope'])

    # devices and environment ids
    v = 'device / env id'
    for dev in ['tpu', 'cuda:99', 'mps', 'cpu:0x', '']:
        add(v, f'train --device {dev!r}', lambda c, dev=dev: ['train', *T, '--device', dev])
    add(v, "evaluate --device 'cuda:99'", lambda c: ['evaluate', *E, '--device', 'cuda:99'])
    add(v, "generate --device 'cuda:99'", lambda c: ['generate', *G, '--device', 'cuda:99'])
    add(v, "ppo --task-device 'cuda:99'", lambda c: ['ppo', *P, '--task-device', 'cuda:99'])
    for env in ['NoSuchEnv-v0', 'CartPole-v99', 'ALE/Pong-v5', 'Pendulum-v1', 'cartpole']:
        add(v, f'ppo --env {env}', lambda c, env=env: ['ppo', '--env', env, '--preset', 'tiny', '--total-steps', 64, '--wandb', 'disabled'])

    # values accepted that should not be
    x = 'value'
    for flag, val in [('--cql-alpha', 'nan'), ('--cql-alpha', '-1'), ('--cql-alpha', 'inf'), ('--lr', 'nan'), ('--lr', '0'), ('--lr', '-1'),
                      ('--gamma', '1.5'), ('--gamma', 'nan'), ('--expectile', '0'), ('--expectile', '1'), ('--beta', 'nan'), ('--beta', '-1'),
                      ('--batch-size', '0'), ('--hidden', '0'), ('--hidden', ''), ('--polyak', '2'), ('--polyak', '0'), ('--max-weight', '0'),
                      ('--grad-clip', 'nan'), ('--grad-clip', '0'), ('--log-every', '0')]:
        add(x, f'iql {flag} {val}', lambda c, f=flag, v=val: ['iql', *I, '--data', c.eps, f, v], needs=('eps',))
    for flag, val in [('--lr', 'nan'), ('--lr', '-1'), ('--gamma', '2'), ('--gae-lambda', '1.5'), ('--clip-coef', '-1'), ('--ent-coef', 'nan'),
                      ('--ent-coef-final', 'inf'), ('--vf-coef', '-1'), ('--max-grad-norm', '0'), ('--target-kl', '-1'), ('--obs-clip', '0'),
                      ('--hidden', '0'), ('--hidden', ''), ('--n-steps', '0')]:
        add(x, f'ppo {flag} {val}', lambda c, f=flag, v=val: ['ppo', *P, f, v])
    for flag, val in [('--lr', 'nan'), ('--gate-blend-epochs', '-1'), ('--gate-g4-max-harm', 'nan'), ('--gate-alpha-schedule', 'step'),
                      ('--gate-max-seed-params', '0'), ('--static-seeds', 'bogus'), ('--contribution-batch', '0'), ('--seed', '-1')]:
        add(x, f'train {flag} {val}', lambda c, f=flag, v=val: ['train', *T, f, v])
    for flag, val in [('--reward-acc-scale', 'nan'), ('--reward-gamma', '0'), ('--reward-rent-weight', 'inf'), ('--reward-stage-potentials', '1,2'),
                      ('--reward-baseline', 'dynamic'), ('--seed', '-1')]:
        add(x, f'generate {flag} {val}', lambda c, f=flag, v=val: ['generate', *G, f, v])
    add(x, 'evaluate --seeds -1', lambda c: ['evaluate', *TINY, '--policies', 'static', '--seeds', '-1'])
    add(x, 'evaluate --policies static,static', lambda c: ['evaluate', *TINY, '--policies', 'static,static', '--seeds', 0])
    add(x, 'train --set nope=1', lambda c: ['train', *T, '--set', 'nope=1'])
    add(x, 'train --set lr=abc', lambda c: ['train', *T, '--set', 'lr=abc'])

    # flags that --resume would silently ignore
    f = 'flag on --resume'
    add(f, 'train --resume --runs-dir X', lambda c: ['train', '--resume', c.run, '--runs-dir', c.root / 'other', '--quiet'], needs=('run',))
    add(f, 'train --resume --epochs 9', lambda c: ['train', '--resume', c.run, '--epochs', 9, '--quiet'], needs=('run',))
    add(f, 'train --resume --preset tiny', lambda c: ['train', '--resume', c.run, *TINY, '--quiet'], needs=('run',))
    add(f, 'train --resume --policy periodic', lambda c: ['train', '--resume', c.run, '--policy', 'periodic', '--quiet'], needs=('run',))
    add(f, 'ppo --resume --lr 0.5', lambda c: ['ppo', *P, '--total-steps', 32, '--lr', 0.5, '--resume', c.ppo], needs=('ppo',))
    add(f, 'ppo --resume --seed 3', lambda c: ['ppo', *P, '--total-steps', 32, '--seed', 3, '--resume', c.ppo], needs=('ppo',))
    add(f, 'ppo --resume --n-envs 2', lambda c: ['ppo', *P, '--total-steps', 64, '--n-envs', 2, '--resume', c.ppo], needs=('ppo',))
    add(f, 'ppo --resume --task-epochs 3', lambda c: ['ppo', *P, '--total-steps', 32, '--task-epochs', 3, '--resume', c.ppo], needs=('ppo',))
    add(f, 'ppo --resume --runs-dir X', lambda c: ['ppo', *P, '--total-steps', 32, '--runs-dir', c.root / 'other', '--resume', c.ppo], needs=('ppo',))
    add(f, 'ppo --resume --total-steps fewer than done', lambda c: ['ppo', *P, '--total-steps', 16, '--resume', c.ppo], needs=('ppo',))
    return C

CASES = _cases()

# ---------------------------------------------------------------- running one case

def snapshot(*roots:Path) -> dict[str, tuple]:
    "Every path under `roots` with its size and modification time."
    out = {}
    for r in roots:
        for dirpath, dirs, files in os.walk(r):
            for n in dirs + files:
                p = os.path.join(dirpath, n)
                try: s = os.lstat(p); out[p] = (s.st_size, s.st_mtime_ns) if n in files else ()
                except OSError: pass
    return out

def prepare(case:Case, goods:dict, root:Path) -> Ctx:
    "A fresh working folder with copies of the good files the case needs, corrupted by `case.prep`."
    root.mkdir(parents=True); c = Ctx(root)
    c.file.write_text('not a folder\n')
    for k in case.needs:
        if k == 'fashion':
            c.fashion = root / 'data'; shutil.copytree(FASHION, c.fashion)
        elif k == 'iql': c.iql = root / 'iql.pt'; shutil.copy(goods['iql'], c.iql)
        else: setattr(c, k, root / k); shutil.copytree(goods[k], root / k)
    if case.prep: case.prep(c)
    return c

@dataclass
class Outcome:
    rc: object
    stderr: str
    new: list

    @property
    def kind(self) -> str:
        "'ok' (exit 2, one line, nothing written), 'traceback', 'accepted', 'unclear' (exit 2 but several lines), 'wrote' (left files)."
        if isinstance(self.rc, BaseException) and not isinstance(self.rc, SystemExit): return 'traceback'
        if self.rc == 0: return 'accepted'
        if 'Traceback' in self.stderr or self.stderr.count('\n') != 1 or self.rc != 2: return 'unclear'
        return 'wrote' if self.new else 'ok'

def outcome(case:Case, goods:dict, root:Path) -> Outcome:
    "Run `case` in a fresh folder under `root` and compare the disk before and after."
    env = {**case.env}
    if 'fashion' in case.needs: env |= {'ESPER_DATA': str(root / 'data'), 'ESPER_CACHE': str(root.parent / (root.name + '.cache'))}
    with contextlib.ExitStack() as stack:
        c = prepare(case, goods, root)
        if case.ro: c.ro = stack.enter_context(read_only_dir(root / 'ro'))
        before = snapshot(root)
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try: rc, err = _run(case.argv(c), root)
        finally:
            for k, v in old.items():
                if v is None: os.environ.pop(k, None)
                else: os.environ[k] = v
        after = snapshot(root)
    new = sorted(p for p in after if before.get(p) != after[p] and not p.endswith('__pycache__'))
    return Outcome(rc, err, new)

def _check(o:Outcome) -> None:
    assert not isinstance(o.rc, BaseException), f"traceback: {o.rc!r}"
    assert o.rc == 2, (o.rc, o.stderr)
    assert o.stderr.count('\n') == 1 and 'Traceback' not in o.stderr, o.stderr
    assert not o.new, f"bad input left files: {o.new}"

@pytest.mark.parametrize('case', CASES, ids=[f'{c.cls}: {c.name}' for c in CASES])
def test_case(case, goods, tmp_path):
    if 'fashion' in case.needs and not FASHION.is_dir(): pytest.skip('needs the dataset-fashion-mnist package')
    _check(outcome(case, goods, tmp_path / 'case'))

# ---------------------------------------------------------------- property-based: the CLI argument space

def _case_root(base:Path) -> Path:
    return Path(tempfile.mkdtemp(dir=base)) / 'case'

def _flags(command:str) -> list:
    "Every config flag of `command` with its type (from the parser itself, so a new field is covered at once)."
    from esper.cli import parser
    sub = parser()._subparsers._group_actions[0].choices[command]
    return [f for f in sub.get_default('_flags') if not (command == 'ppo' and f.section == 'task' and f.key == 'device')]

def _bad_value(flag) -> st.SearchStrategy:
    "Text that no value of `flag`'s type may accept."
    import typing
    tp = flag.type
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if typing.get_origin(tp) is not tuple and args else tp
    junk = st.from_regex(r'\A[a-z]{2,6}\Z').filter(lambda t: t not in ('true', 'false', 'yes', 'no', 'on', 'off', 'none', 'null'))
    if base is bool: return junk
    if base is float: return st.sampled_from(['nan', 'inf', '-inf', '-nan', '1e999']) | junk
    if base is int: return st.sampled_from(['-5', '-1', '1.5', '1e3']) | junk
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        return st.sampled_from(['nan,1', '-3', 'x,y'] if inner in (int, float) else ['zz-unknown'])
    return st.just('zz-' + flag.key.replace('.', '-'))  # a string no field accepts

COMMANDS = {'train': [*T], 'generate': [*G], 'evaluate': [*E], 'ppo': [*P], 'iql': [*I]}

@st.composite
def bad_argv(draw, eps:Path):
    "A command line of the tiny preset with one config flag set to a value its type (and range) refuses."
    cmd = draw(st.sampled_from(sorted(COMMANDS)))
    flag = draw(st.sampled_from(_flags(cmd)))
    argv = [cmd, *COMMANDS[cmd], *(['--data', eps] if cmd == 'iql' else [])]
    value = draw(_bad_value(flag))
    how = draw(st.sampled_from(['flag', 'set']))
    return argv + ([flag.option, value] if how == 'flag' else ['--set', f'{flag.name}={value}'])

@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_cli_argument_space(goods, tmp_path, data):
    "Any config flag of any command, given a value it must refuse, is one line, exit 2, and nothing on disk."
    argv = data.draw(bad_argv(goods['eps']))
    root = _case_root(tmp_path)
    root.mkdir(parents=True)
    before = snapshot(root, goods['eps'])
    rc, err = _run(argv, root)
    o = Outcome(rc, err, sorted(set(snapshot(root, goods['eps']).items()) ^ set(before.items())))
    _check(o)

# ---------------------------------------------------------------- property-based: corrupted files

def _junk(shape_hint=()) -> st.SearchStrategy:
    "Values of the wrong kind for any entry: other types, 0-d and ragged arrays, NaN, strings."
    return st.sampled_from([None, 3, 'text', [1, 2], {'a': 1}, torch.zeros(0), torch.full((2, 3), float('nan')), torch.zeros(1, 1, 1, 1)])

RUN_KEYS = ('config', 'epoch', 'counters', 'model', 'slots', 'optimizer', 'rng', 'rng_gen', 'tracker', 'diag', 'history', 'signals', 'policy', 'events')
IQL_KEYS = ('actor', 'obs_mean', 'obs_std', 'config', 'obs_dim', 'n_actions')
PPO_KEYS = ('config', 'net_spec', 'model', 'normalizer', 'action_names', 'optimizer', 'rng', 'episodes', 'history', 'update', 'global_step', 'n_envs', 'seed')
EP_KEYS = ('obs', 'masks', 'actions', 'rewards', 'next_obs', 'next_masks', 'terminated', 'truncated', 'reward_components', 'component_names', 'policy', 'config_hash')

@st.composite
def torch_corruption(draw, keys):
    "Truncate the file, drop a required entry, or put junk in one."
    how = draw(st.sampled_from(['truncate', 'drop', 'junk']))
    if how == 'truncate':
        keep = draw(st.floats(0, 0.95))
        return f'truncate {keep:.2f}', lambda p: _truncate(p, keep)
    k = draw(st.sampled_from(keys))
    if how == 'drop': return f'drop {k}', lambda p: _torch_edit(p, lambda d: d.pop(k))
    v = draw(_junk())
    return f'{k} = {str(v)[:30]}', lambda p: _torch_edit(p, lambda d: d.update({k: v}))

@st.composite
def episode_corruption(draw):
    "Truncate an episode file, drop an array, or replace one with a 0-d, ragged, NaN or string array; or break meta.json."
    how = draw(st.sampled_from(['truncate', 'drop', 'junk', 'meta']))
    if how == 'truncate':
        keep = draw(st.floats(0, 0.95)); return f'truncate {keep:.2f}', lambda c: _truncate(c.ep0, keep)
    if how == 'meta':
        k = draw(st.sampled_from(['format', 'obs_dim', 'n_actions', 'episodes']))
        v = draw(st.sampled_from([None, -1, 'x', [], {}, 2.5]))
        if k == 'episodes' and v == []: v = [{'nofile': 1}]
        return f'meta {k} = {v!r}', lambda c: _json_edit(c.eps / 'meta.json', lambda m: m.update({k: v}))
    k = draw(st.sampled_from(EP_KEYS))
    if how == 'drop': return f'drop {k}', lambda c: _npz_edit(c.ep0, lambda z: z.pop(k))
    v = draw(st.sampled_from([np.array(1.5), np.array('x'), np.zeros((99, 2)), np.full((2,), np.nan), np.array([['a']]), np.zeros(0)]))
    if k in ('policy', 'config_hash') and v.dtype.kind == 'U' and v.ndim == 0: v = np.zeros(2)
    return f'{k} = {v!r}'[:60], lambda c: _npz_edit(c.ep0, lambda z: z.update({k: v}))

TARGETS = {
    'run checkpoint': (RUN_KEYS, 'run', lambda c: c.runck, lambda c: ['train', '--resume', c.run, '--quiet', '--wandb', 'disabled']),
    'iql policy': (IQL_KEYS, 'iql', lambda c: c.iql, lambda c: ['train', *T, '--policy', c.iql]),
    # a PPO policy's config is metadata for acting; its unknown fields are dropped by design (esper.simic.ppo)
    'ppo policy': (PPO_KEYS[1:5], 'ppo', lambda c: c.ppock, lambda c: ['train', *T, '--policy', c.ppock]),
    'ppo checkpoint': (PPO_KEYS, 'ppo', lambda c: c.ppock, lambda c: ['ppo', *P, '--total-steps', 32, '--resume', c.ppo]),
}

@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_checkpoints_and_policies(goods, tmp_path, data):
    "A run checkpoint, IQL or PPO policy, or PPO checkpoint that is truncated, lacks an entry or holds junk: one line, exit 2, nothing written."
    target = data.draw(st.sampled_from(sorted(TARGETS)))
    keys, need, file, argv = TARGETS[target]
    name, edit = data.draw(torch_corruption(keys))
    case = Case('corrupt', f'{target}: {name}', argv, lambda c: edit(file(c)), needs=(need,))
    _check(outcome(case, goods, _case_root(tmp_path)))

@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_episodes(goods, tmp_path, data):
    "An episode folder with one broken file or a broken index: `iql` and an appending `generate` refuse it in one line."
    name, edit = data.draw(episode_corruption())
    cmd = data.draw(st.sampled_from([['iql', *I], ['generate', *G, '--seed', 7]]))
    flag = '--data' if cmd[0] == 'iql' else '--out'
    case = Case('corrupt', f'episodes: {name}', lambda c: [*cmd, flag, c.eps], edit, needs=('eps',))
    _check(outcome(case, goods, _case_root(tmp_path)))

@pytest.mark.skipif(not FASHION.is_dir(), reason='needs the dataset-fashion-mnist package')
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=4)
@given(data=st.data())
def test_corrupted_dataset(goods, tmp_path, data):
    "A Fashion-MNIST file cut short anywhere, or replaced by bytes that are not gzip: one line, exit 2, nothing written."
    f = data.draw(st.sampled_from(['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz']))
    keep = data.draw(st.floats(0, 0.9))
    junk = data.draw(st.booleans())
    prep = (lambda c: (c.fashion / f).write_bytes(b'\x1f' + bytes(int(keep * 100)))) if junk else (lambda c: _truncate(c.fashion / f, keep))
    case = Case('corrupt', f'{f}', lambda c: ['train', *T, *FM], prep, needs=('fashion',))
    _check(outcome(case, goods, _case_root(tmp_path)))

if __name__ == '__main__':  # the table of outcomes, by class
    import collections
    base = Path(tempfile.mkdtemp(prefix='esper_bad_'))
    goods = build_goods(base / 'goods')
    by = collections.defaultdict(collections.Counter); rows = []
    sel = sys.argv[1:]
    for k, case in enumerate(CASES):
        if sel and not any(s in f'{case.cls}: {case.name}' for s in sel): continue
        t = time.perf_counter()
        try: o = outcome(case, goods, base / f'c{k}')
        except BaseException as e: o = Outcome(e, '', [])
        by[case.cls][o.kind] += 1
        msg = o.stderr.strip().splitlines()[-1] if o.stderr.strip() else repr(o.rc)
        rows.append(f"{o.kind:9s} {case.cls:16s} {case.name:55s} {time.perf_counter() - t:5.1f}s  {msg[:160]}" + (f"  NEW={o.new[:2]}" if o.new else ''))
        print(rows[-1], flush=True)
    print()
    for cls, cnt in by.items(): print(f"{cls:16s} {sum(cnt.values()):3d} cases: " + ', '.join(f'{k} {v}' for k, v in sorted(cnt.items())))
