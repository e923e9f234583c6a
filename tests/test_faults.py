"""Faults: SIGKILL at random moments, a full disk, read-only folders, two processes on one folder, Ctrl-C at start-up.

Each asserts that nothing finished is lost (every file present is whole and loads) and that resuming equals a
run that was never stopped. The kill loops are short in CI (two kills each) and long with ESPER_SLOW=1."""
import contextlib, errno, json, os, random, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from esper.run import load_run_checkpoint
from esper.simic.episodes import load_episodes, episode_files

ENV = {**os.environ, 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1'}
ESPER = [sys.executable, '-m', 'esper.main']
KILLS = 8 if os.environ.get('ESPER_SLOW') else 1
TRAIN = ['train', '--preset', 'tiny', '--epochs', '8', '--policy', 'periodic', '--quiet', '--wandb', 'disabled']
GEN = ['generate', '--preset', 'tiny', '--episodes', '3']
EVAL = ['evaluate', '--preset', 'tiny', '--epochs', '3', '--policies', 'static,periodic', '--seeds', '0,1']

def esper(*args, cwd=None):
    return subprocess.run([*ESPER, *map(str, args)], capture_output=True, text=True, timeout=300, env=ENV, cwd=cwd)

def ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def kill_after(args, delay:float, ready=lambda: True, cwd=None) -> None:
    "Start `esper args`; once `ready()` (its work has begun: start-up takes seconds on a busy machine), SIGKILL it `delay` seconds later."
    p = subprocess.Popen([*ESPER, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=cwd)
    deadline = time.time() + 120
    while p.poll() is None and not ready() and time.time() < deadline: time.sleep(0.05)
    try: p.wait(timeout=delay)
    except subprocess.TimeoutExpired: p.send_signal(signal.SIGKILL); p.wait()

def has(pattern:str, root:Path):
    "A `ready` test: some file matching `pattern` exists under `root`."
    return lambda: Path(root).exists() and any(Path(root).glob(pattern))

def tmp_files(root:Path) -> list[Path]:
    return [p for p in Path(root).rglob('*.tmp')]

def whole_json(root:Path) -> None:
    "Every JSON file under `root` parses: nothing was left half-written."
    for f in Path(root).rglob('*.json'): json.loads(f.read_text())

def epochs_logged(run_dir:Path) -> list[int]:
    lines = (run_dir / 'events.jsonl').read_text().splitlines() if (run_dir / 'events.jsonl').exists() else []
    return [e['epoch'] for e in map(json.loads, lines) if e['type'] == 'epoch_completed']

def delays(n:int, lo:float, hi:float, seed:int) -> list[float]:
    "`n` kill moments, seeded so a failure can be replayed."
    rng = random.Random(seed); return [rng.uniform(lo, hi) for _ in range(n)]

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "Uninterrupted runs of each command: what every killed-and-resumed run must equal."
    root = tmp_path_factory.mktemp('reference')
    ok(esper(*TRAIN, '--runs-dir', root / 'train'))
    ok(esper(*GEN, '--out', root / 'eps', '--runs-dir', root / 'gen'))
    ok(esper(*EVAL, '--out', root / 'eval'))
    run = next((root / 'train').iterdir())
    return {'result': json.loads((run / 'result.json').read_text()), 'ck': load_run_checkpoint(run).state,
            'eps': load_episodes(root / 'eps'), 'records': json.loads((root / 'eval' / 'records.json').read_text())}

# ---------------------------------------------------------------- SIGKILL

@pytest.mark.parametrize('delay', delays(KILLS, 0, 3.0, seed=15))
def test_sigkill_train_then_resume_equals_uninterrupted(reference, tmp_path, delay):
    kill_after([*TRAIN, '--runs-dir', tmp_path], delay, has('*/meta.json', tmp_path))
    runs = list(tmp_path.iterdir())
    if not runs: pytest.skip(f'killed at {delay:.1f} s, before the run folder existed')
    run = runs[0]
    if not (run / 'checkpoint.pt').exists():  # killed before its first checkpoint: no epoch had finished
        assert epochs_logged(run) == []; return
    ck = load_run_checkpoint(run)  # the latest checkpoint is whole
    done = ck.state['epoch']
    assert all(e <= done + 1 for e in epochs_logged(run))
    if (run / 'result.json').exists(): return  # it had finished
    ok(esper('train', '--resume', run, '--quiet', '--wandb', 'disabled'))
    res = json.loads((run / 'result.json').read_text())
    assert res['test_acc'] == reference['result']['test_acc']
    curve = lambda st: [(h['epoch'], h['train/loss'], h['val/loss'], h['val/acc']) for h in json.loads(st['history'])]
    assert curve(load_run_checkpoint(run).state) == curve(reference['ck'])  # (wall times differ, nothing else)
    assert epochs_logged(run) == list(range(1, 9))  # every epoch logged once, none replayed
    assert not tmp_files(run)

@pytest.mark.parametrize('delay', delays(KILLS, 0, 2.5, seed=16))
def test_sigkill_generate_keeps_episodes_and_rerun_equals_uninterrupted(reference, tmp_path, delay):
    out = tmp_path / 'eps'
    kill_after([*GEN, '--out', out, '--runs-dir', tmp_path / 'runs'], delay, has('meta.json', out))
    if out.exists() and episode_files(out):  # every finished episode loads at once, before any rerun
        part = load_episodes(out)
        n = part.n_episodes
        assert torch.equal(part.actions, reference['eps'].actions[:len(part.actions)])
    ok(esper(*GEN, '--out', out, '--runs-dir', tmp_path / 'runs'))
    ds, ref = load_episodes(out), reference['eps']
    assert ds.n_episodes == ref.n_episodes == 3
    for k in ('obs', 'actions', 'rewards', 'next_obs', 'masks', 'terminals'):
        assert torch.equal(getattr(ds, k), getattr(ref, k)), k
    assert not tmp_files(out)

@pytest.mark.parametrize('delay', delays(KILLS, 0, 4.0, seed=17))
def test_sigkill_evaluate_leaves_whole_files_and_rerun_equals_uninterrupted(reference, tmp_path, delay):
    out = tmp_path / 'eval'
    kill_after([*EVAL, '--out', out], delay, has('meta.json', out))
    if out.exists(): whole_json(out)  # whatever it had written is whole (keeping finished runs is issue 16's)
    ok(esper(*EVAL, '--out', out))
    recs = json.loads((out / 'records.json').read_text())
    key = lambda r: (r['label'], r['seed'])
    assert [(key(r), r['test_acc']) for r in sorted(recs, key=key)] == [(key(r), r['test_acc']) for r in sorted(reference['records'], key=key)]
    assert not tmp_files(out)

# ---------------------------------------------------------------- a full disk

@contextlib.contextmanager
def small_disk(path:Path, size:str):
    "A tmpfs of `size` at `path` (root only), or skip."
    path.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)], capture_output=True).returncode:
        pytest.skip('cannot mount a tmpfs here (the simulated ENOSPC test covers the same path)')
    try: yield path
    finally: subprocess.run(['umount', str(path)], capture_output=True)

def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path):
    with small_disk(tmp_path / 'small', '48k') as d:
        r = esper(*TRAIN, '--runs-dir', d / 'runs')
        assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'No space left on device' in r.stderr, r.stderr
        run = next((d / 'runs').iterdir())
        assert not tmp_files(d)
        load_run_checkpoint(run)  # the checkpoint that fit is whole
        whole_json(run)

def test_simulated_enospc_removes_the_temporary_file(tmp_path, monkeypatch, capsys):
    "Where no tmpfs can be mounted: ENOSPC from the disk on the first checkpoint, in-process."
    import esper.io
    from esper.cli import main
    def full(fd): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(esper.io.os, 'fsync', full)
    assert main([*TRAIN, '--runs-dir', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'No space left on device' in err and 'Traceback' not in err
    assert not tmp_files(tmp_path)

# ---------------------------------------------------------------- read-only folders, two processes, Ctrl-C

@contextlib.contextmanager
def read_only(path:Path):
    "`path` made read-only in place by a read-only bind mount of itself (root), or skip."
    if os.geteuid() != 0 or subprocess.run(['mount', '--bind', '-o', 'ro', str(path), str(path)], capture_output=True).returncode:
        pytest.skip('cannot bind-mount read-only here')
    try: yield path
    finally: subprocess.run(['umount', str(path)], capture_output=True)

def test_resume_in_a_read_only_folder_is_one_line_and_changes_nothing(tmp_path):
    kill_after([*TRAIN[:-2], '--epochs', '40', '--wandb', 'disabled', '--runs-dir', tmp_path], 0.5, has('*/checkpoint.pt', tmp_path))
    run = next(tmp_path.iterdir())
    before = {p: p.stat().st_mtime_ns for p in run.iterdir()}
    with read_only(run):
        r = esper('train', '--resume', run, '--quiet', '--wandb', 'disabled')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'not writable' in r.stderr, r.stderr
    assert {p: p.stat().st_mtime_ns for p in run.iterdir()} == before
    ok(esper('train', '--resume', run, '--quiet', '--wandb', 'disabled'))  # writable again: it finishes

def test_a_second_process_on_one_run_folder_refuses(tmp_path):
    p = subprocess.Popen([*ESPER, *TRAIN[:-2], '--epochs', '200', '--wandb', 'disabled', '--runs-dir', str(tmp_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any((r / 'checkpoint.pt').exists() for r in tmp_path.iterdir()): time.sleep(0.2)
        run = next(tmp_path.iterdir())
        r = esper('train', '--resume', run, '--quiet', '--wandb', 'disabled')
        assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'in use by another esper process' in r.stderr, r.stderr
    finally:
        p.send_signal(signal.SIGTERM); p.communicate(timeout=120)
    assert p.returncode in (0, 130)  # the first run stopped cleanly (or had finished), untouched by the second

@pytest.mark.parametrize('delay', [0.3, 1.0])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    p = subprocess.Popen([*ESPER, *TRAIN, '--runs-dir', str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(delay); p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, err)
    assert 'Traceback' not in err and err.count('\n') <= 1, err

def test_ctrl_c_inside_an_exec_during_the_import_still_exits_130(tmp_path):
    "Under `python -m`, a KeyboardInterrupt that escaped code run by exec() makes Python end by SIGINT whatever the exit code; a held SIGINT never raises."
    (tmp_path / 'sends_ctrl_c.py').write_text('import signal\nexec("signal.raise_signal(signal.SIGINT)")\nFINISHED = True\n')
    (tmp_path / 'held.py').write_text('import sys\nfrom esper.main import _import_holding_sigint\nm, hit = _import_holding_sigint("sends_ctrl_c")\n'
                                      'print(hit, file=sys.stderr); sys.exit(130 if hit else 0)\n')
    (tmp_path / 'caught.py').write_text('import sys\ntry: import sends_ctrl_c\nexcept KeyboardInterrupt: sys.exit(130)\n')
    run = lambda mod: subprocess.run([sys.executable, '-m', mod], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=60)
    held, caught = run('held'), run('caught')
    assert (held.returncode, held.stderr.strip()) == (130, 'True')
    assert caught.returncode == -signal.SIGINT  # the control: why main() holds the signal instead of catching it
