"W&B for real, with no network: an offline run read back from its .wandb file, and the online → offline fallback."
import io, json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
from esper.contracts.stages import SeedStage
from esper.contracts.schemas import TelemetryEvent, TelemetryEventType as T
from esper.nissa.config import TelemetryConfig
from esper.nissa.output import WandbBackend, make_hub, read_jsonl, read_wandb_run, resolve_wandb_mode

@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    "W&B writes only under tmp_path; no key, no netrc, offline unless a test says otherwise."
    monkeypatch.setenv('WANDB_DIR', str(tmp_path / 'wandb_dir'))
    monkeypatch.setenv('WANDB_SILENT', 'true')
    monkeypatch.setenv('NETRC', str(tmp_path / 'no-netrc'))
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('WANDB_MODE', 'offline')
    return tmp_path

def lifecycle():
    return [TelemetryEvent(T.SEED_GERMINATED, 2, 0, data={'blueprint': 'conv_enhance'}),
            TelemetryEvent(T.SEED_STAGE_CHANGED, 2, 0, data={'from': 'GERMINATED', 'to': 'TRAINING', 'blueprint': 'conv_enhance'}),
            TelemetryEvent(T.SEED_STAGE_CHANGED, 4, 0, data={'from': 'TRAINING', 'to': 'BLENDING', 'blueprint': 'conv_enhance'}),
            TelemetryEvent(T.SEED_CULLED, 5, 0, data={'reason': 'G3 failed: contribution -1.2 pts'})]

def test_offline_run_is_read_back_from_the_wandb_file(wandb_env):
    cfg = TelemetryConfig(wandb_mode='offline', console=False)
    run_cfg = {'task': 'fashion_mnist', 'lr': 0.1, 'host': {'widths': [8, 16, 32]}, 'seed': 3}
    with make_hub(cfg, wandb_env / 'run', run_cfg, 'offline-test', n_slots=1, total_epochs=6) as hub:
        run_id = hub.wandb_run_id
        evs = iter(lifecycle())
        for ep in range(6):
            hub.log_metrics(ep, {'train/loss': 1.0 / (ep + 1), 'val/acc': 0.5 + 0.05 * ep, 'slot0/stage': 1 + ep % 3,
                                 'slot0/alpha': ep / 10, 'grad/health': 1.0})
            if ep in (2, 4, 5): [hub.emit(next(evs)) for _ in range(2 if ep == 2 else 1)]
    assert run_id and len(run_id) == 8
    got = read_wandb_run(wandb_env / 'run')
    assert got['finished'] and got['id'] == run_id
    rows = [h for h in got['history'] if 'val/acc' in h]
    assert [r['_step'] for r in rows] == list(range(6))
    assert [round(r['val/acc'], 6) for r in rows] == [round(0.5 + 0.05 * e, 6) for e in range(6)]
    assert [r['slot0/stage'] for r in rows] == [1, 2, 3, 1, 2, 3]
    assert {'train/loss', 'val/acc', 'slot0/stage', 'slot0/alpha', 'grad/health'} <= set(rows[0])
    # the config is logged in full, with the telemetry config beside it
    assert {k: got['config'][k] for k in run_cfg} == run_cfg
    assert got['config']['telemetry'] == cfg.to_dict()
    # the seed lifecycle as a wandb.Table of stage changes
    table = got['summary']['lifecycle/stage_changes']
    assert table['_type'] == 'table-file' and table['nrows'] == 4
    tjson = json.loads(next((wandb_env / 'run').rglob('stage_changes*.table.json')).read_text())
    assert tjson['columns'] == ['epoch', 'slot', 'event', 'from', 'to', 'blueprint', 'reason']
    assert [r[4] for r in tjson['data']] == ['GERMINATED', 'TRAINING', 'BLENDING', 'CULLED']
    assert tjson['data'][-1][6].startswith('G3 failed')
    # the same run also wrote its JSONL beside it
    assert [e['type'] for e in read_jsonl(wandb_env / 'run' / 'events.jsonl')].count('epoch_completed') == 6

def test_disabled_writes_nothing(wandb_env):
    with make_hub(TelemetryConfig(wandb_mode='disabled', console=False, jsonl=False), wandb_env / 'run', {}, 'x', 1, 1) as hub:
        hub.log_metrics(0, {'val/acc': 0.5})
        assert hub.wandb_run_id is None
    assert not list(wandb_env.rglob('*.wandb'))

def test_auto_is_offline_without_a_key_and_online_with_one(wandb_env, monkeypatch):
    monkeypatch.delenv('WANDB_MODE')
    assert resolve_wandb_mode('auto') == 'offline'
    (wandb_env / 'netrc').write_text('machine api.wandb.ai login user password ' + 'k' * 40 + '\n')
    monkeypatch.setenv('NETRC', str(wandb_env / 'netrc'))
    assert resolve_wandb_mode('auto') == 'online'

def closed_port() -> int:
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    return port

def test_unreachable_server_falls_back_to_offline_within_the_timeout(wandb_env, monkeypatch):
    monkeypatch.delenv('WANDB_MODE')
    monkeypatch.setenv('WANDB_API_KEY', 'd' * 40)                       # "logged in" ...
    monkeypatch.setenv('WANDB_BASE_URL', f'http://127.0.0.1:{closed_port()}')  # ... to a server that is not there
    cfg = TelemetryConfig(wandb_mode='auto', wandb_init_timeout_s=10)
    assert resolve_wandb_mode(cfg.wandb_mode) == 'online'
    err = io.StringIO()
    t0 = time.monotonic()
    wb = WandbBackend(cfg, {'lr': 0.1}, 'fallback', wandb_env / 'run', stream=err)
    elapsed = time.monotonic() - t0
    assert elapsed < cfg.wandb_init_timeout_s, f"fallback took {elapsed:.1f} s"
    assert wb.mode == 'offline' and wb.fallback_reason
    assert err.getvalue().count('\n') == 1 and 'logging offline' in err.getvalue()
    wb.emit(TelemetryEvent(T.EPOCH_COMPLETED, 0, data={'val/acc': 0.42}))
    wb.close()
    got = read_wandb_run(wandb_env / 'run')
    assert [h['val/acc'] for h in got['history'] if 'val/acc' in h] == [0.42]

def test_train_iql_logs_its_curves_to_an_offline_wandb_run(wandb_env):
    "train_iql(hub=...) emits IQL_UPDATE events; the W&B backend logs their iql/* metrics at the update step."
    from esper.simic.episodes import EpisodeWriter, ToyMaskedEnv, UniformRandom, collect_episodes, load_episodes
    from esper.simic.iql import IQLConfig, train_iql
    collect_episodes(ToyMaskedEnv(), UniformRandom(0), 10, EpisodeWriter(wandb_env / 'eps', 5, 4), seed=0)
    cfg = TelemetryConfig.from_profile('minimal', wandb_mode='offline', console=False)
    hub = make_hub(cfg, wandb_env / 'iql', {'algo': 'iql', 'steps': 120}, 'iql-test', 1, None)
    try: res = train_iql(load_episodes(wandb_env / 'eps'), IQLConfig.preset('tiny'), steps=120, seed=0, hub=hub)
    finally: hub.close()
    rows = [h for h in read_wandb_run(wandb_env / 'iql')['history'] if 'iql/q_loss' in h]
    assert [r['_step'] for r in rows] == [50, 100, 120]
    assert [round(r['iql/q_loss'], 5) for r in rows] == [round(h['iql/q_loss'], 5) for h in res.history]
    assert {'iql/v_loss', 'iql/policy_loss', 'iql/mean_q', 'charts/updates_per_s'} <= set(rows[0])
    assert [e['type'] for e in read_jsonl(wandb_env / 'iql' / 'events.jsonl')] == ['iql_update'] * 3

def test_reader_waits_out_a_torn_last_record(wandb_env):
    "read_wandb_run while the W&B service is mid-write: a torn last record is read again, not an error."
    import shutil, threading
    from esper.nissa.output import read_wandb_records
    wb = WandbBackend(TelemetryConfig(wandb_mode='offline'), {'lr': 0.1}, 'torn', wandb_env / 'full')
    for ep in range(3): wb.emit(TelemetryEvent(T.EPOCH_COMPLETED, ep, data={'val/acc': 0.5 + ep / 10}))
    wb.close()
    full = next((wandb_env / 'full').rglob('run-*.wandb'))
    read_wandb_run(full)                                      # finished: the file is complete
    data, live = full.read_bytes(), wandb_env / 'live' / 'run-torn.wandb'
    live.parent.mkdir()
    def torn(cut):
        live.write_bytes(data[:cut])
        try: read_wandb_records(live); return False
        except ValueError: return False
        except Exception: return True
    cut = next(c for c in range(len(data) - 8, 64, -7) if torn(c))   # a cut inside a record's payload
    threading.Timer(0.5, lambda: shutil.copyfile(full, live)).start()  # the service finishes writing
    got = read_wandb_run(live, wait_s=10)
    assert got['finished'] and [round(h['val/acc'], 6) for h in got['history'] if 'val/acc' in h] == [0.5, 0.6, 0.7]

# ---------------------------------------------------------------- the commands, read back from their offline runs

ESPER = [sys.executable, '-m', 'esper.cli']

def esper(*args, cwd=None, **kw):
    return subprocess.run([*ESPER, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, **kw)

def media(run_file:Path, item:dict) -> Path:
    "The file a logged image or table points at, beside the run's `.wandb` file."
    return run_file.parent / 'files' / item['path']

def test_esper_train_reaches_wandb_with_summary_images_and_group(wandb_env):
    r = esper('train', '--preset', 'tiny', '--policy', 'periodic', '--wandb', 'offline', '--runs-dir', wandb_env / 'runs')
    assert r.returncode == 0, r.stderr
    run_dir = next((wandb_env / 'runs').iterdir())
    res, got = json.loads((run_dir / 'result.json').read_text()), read_wandb_run(run_dir)
    s = got['summary']
    assert s['test/acc'] == res['test_acc'] and s['model/params'] == res['params']
    assert (s['seeds/fossils'], s['seeds/culls']) == (res['fossils'], res['culls'])
    assert s['val/best_acc'] == pytest.approx(res['best_val_acc'])
    run_file = next(run_dir.rglob('run-*.wandb'))
    for name in ('plots/lifecycle', 'plots/curves'):
        assert s[name]['_type'] == 'image-file' and media(run_file, s[name]).stat().st_size > 0
    assert (got['group'], got['job_type'], got['tags']) == ('synthetic/periodic', 'train', ['synthetic', 'periodic', 'tiny'])
    stages = json.loads(media(run_file, s['lifecycle/stages']).read_text())
    assert stages['columns'] == ['epoch', 'slot', 'stage', 'stage_name', 'alpha'] and 'TRAINING' in {r[3] for r in stages['data']}
    assert all(SeedStage(r[2]).name == r[3] for r in stages['data']) and len(stages['data']) == res['config']['epochs']
    assert got['exit_code'] == 0
    assert 'W&B: offline' in r.stdout and f'wandb sync {run_dir}' in r.stdout

def test_esper_evaluate_logs_one_run_per_seed_in_one_group(wandb_env):
    out = wandb_env / 'study'
    r = esper('evaluate', '--preset', 'tiny', '--epochs', 2, '--policies', 'static,periodic', '--seeds', '0,1', '--wandb', 'offline', '--out', out)
    assert r.returncode == 0, r.stderr
    runs = [read_wandb_run(f) for f in sorted(out.rglob('run-*.wandb'))]
    assert len(runs) == 4 and len({g['id'] for g in runs}) == 4
    assert {g['group'] for g in runs} == {'study'} and {g['job_type'] for g in runs} == {'evaluate'}
    recs = {(x['label'], x['seed']): x for x in json.loads((out / 'records.json').read_text())}
    got = {(g['config']['policy'], g['config']['seed']): g for g in runs}
    assert set(got) == set(recs)
    assert all(got[k]['summary']['test/acc'] == recs[k]['test_acc'] for k in recs)
    assert all(g['tags'][0] == g['config']['policy'] for g in runs)
    assert '4 runs' in r.stdout and 'wandb sync' in r.stdout
    assert [l.split()[4] for l in r.stdout.splitlines() if l.startswith('  periodic seed 1: epoch ') and '/2 ' in l] == ['1/2', '2/2']  # per epoch

def test_an_interrupted_run_is_failed_in_wandb_and_lists_only_what_it_wrote(wandb_env):
    p = subprocess.Popen([*ESPER, 'train', '--preset', 'tiny', '--epochs', '40', '--policy', 'periodic', '--wandb', 'offline',
                          '--runs-dir', str(wandb_env / 'runs'), '--quiet'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list((wandb_env / 'runs').glob('*/events.jsonl'))
        if runs and runs[0].read_text().count('epoch_completed') >= 2: break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    run_dir = runs[0].parent
    listed = out.split('outputs:')[1].splitlines()[0]
    assert 'checkpoint.pt' in listed and 'events.jsonl' in listed
    assert not any(n in listed for n in ('result.json', 'lifecycle.png', 'curves.png', 'grown_model'))
    got = read_wandb_run(run_dir)
    assert got['finished'] and got['exit_code'] != 0 and 'test/acc' not in got['summary']
