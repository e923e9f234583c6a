"Nissa fault tests: each backend's failure is isolated; JSONL rotation and crash safety; config validation."
import io, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from pydantic import ValidationError
from esper.contracts.schemas import TelemetryEvent, TelemetryEventType as T
from esper.nissa.config import TelemetryConfig
from esper.nissa.output import (ConsoleBackend, JsonlBackend, MemoryBackend, NissaHub, WandbBackend, make_hub, read_jsonl)

ROOT = Path(__file__).resolve().parents[1]

class RaisingStream(io.StringIO):
    def write(self, s): raise BrokenPipeError('stdout closed')
    def isatty(self): return True

def broken_backends(tmp_path):
    "One instance of each backend, each made to fail in the way it can in the field."
    jb = JsonlBackend(tmp_path / 'events.jsonl'); os.close(jb._fd)          # file descriptor gone
    mem = MemoryBackend(); mem.events = None                                  # corrupted state
    con = ConsoleBackend(1, 3, stream=RaisingStream())                        # terminal went away
    os.environ['WANDB_DIR'] = str(tmp_path)
    wb = WandbBackend(TelemetryConfig(wandb_mode='offline'), {}, 'broken', tmp_path / 'wb')
    wb.run.finish()                                                           # run finished under it
    return {'JsonlBackend': jb, 'MemoryBackend': mem, 'ConsoleBackend': con, 'WandbBackend': wb}

@pytest.mark.parametrize('name', ['JsonlBackend', 'MemoryBackend', 'ConsoleBackend', 'WandbBackend'])
def test_a_failing_backend_is_disabled_and_reported_once(tmp_path, name):
    bad = broken_backends(tmp_path)[name]
    good, err = MemoryBackend(), io.StringIO()
    hub = NissaHub([bad, good], stream=err)
    for ep in range(4):
        hub.log_metrics(ep, {'val/acc': 0.1 * ep})
        hub.emit(TelemetryEvent(T.SEED_GERMINATED, ep, 0, data={'blueprint': 'norm'}))
    hub.close()
    assert [e for e, _ in good.metrics] == [0, 1, 2, 3]           # the run's telemetry went on
    assert list(hub.disabled) == [name]
    assert err.getvalue().count('\n') == 1 and name in err.getvalue()
    assert bad not in hub.backends

def test_failure_in_close_is_isolated(tmp_path):
    class BadClose(MemoryBackend):
        def close(self): raise RuntimeError('flush failed')
    jb, err = JsonlBackend(tmp_path / 'e.jsonl'), io.StringIO()
    with NissaHub([BadClose(), jb], stream=err) as hub: hub.log_metrics(0, {'val/acc': 0.5})
    assert 'BadClose failed during close' in err.getvalue()
    assert jb._fd is None and read_jsonl(tmp_path / 'e.jsonl')[0]['data'] == {'val/acc': 0.5}

def test_a_backend_that_cannot_be_built_is_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    (tmp_path / 'file').write_text('not a directory')
    err = io.StringIO()
    hub = make_hub(TelemetryConfig(wandb_mode='offline', console=False), tmp_path / 'file' / 'run', {}, 'x', 1, 1, stream=err)
    assert [type(b).__name__ for b in hub.backends] == ['MemoryBackend']
    assert err.getvalue().count('\n') == 2                          # jsonl and wandb each reported once
    hub.log_metrics(0, {'val/acc': 0.5}); hub.close()
    assert hub.memory.metrics == [(0, {'val/acc': 0.5})]

def test_jsonl_rotation_keeps_size_bound_and_newest_events(tmp_path):
    p = tmp_path / 'events.jsonl'
    jb = JsonlBackend(p, max_bytes=2048, backups=3)
    for ep in range(200): jb.emit(TelemetryEvent(T.EPOCH_COMPLETED, ep, data={'train/loss': 1 / (ep + 1), 'val/acc': 0.5}))
    jb.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ['events.jsonl', 'events.jsonl.1', 'events.jsonl.2', 'events.jsonl.3']
    assert all(f.stat().st_size <= 2048 for f in files)
    eps = [r['epoch'] for r in read_jsonl(p, rotated=True)]
    assert eps[-1] == 199 and eps == list(range(eps[0], 200)) and eps[0] > 0   # oldest dropped, no gaps

def test_jsonl_rate_limit_drops_only_metric_events(tmp_path):
    jb = JsonlBackend(tmp_path / 'e.jsonl', min_interval_s=3600)
    for ep in range(10):
        jb.emit(TelemetryEvent(T.EPOCH_COMPLETED, ep, data={'val/acc': ep}))
        jb.emit(TelemetryEvent(T.SEED_STAGE_CHANGED, ep, 0, data={'from': 'TRAINING', 'to': 'BLENDING'}))
    jb.close()
    rows = read_jsonl(tmp_path / 'e.jsonl')
    assert sum(r['type'] == 'seed_stage_changed' for r in rows) == 10
    assert [r['epoch'] for r in rows if r['type'] == 'epoch_completed'] == [0, 9]   # first, and the last at close
    assert jb.dropped == 8

WRITER = """
import sys, time
from esper.contracts.schemas import TelemetryEvent, TelemetryEventType as T
from esper.nissa.output import JsonlBackend
jb = JsonlBackend(sys.argv[1], max_bytes=50_000, backups=2)
print('ready', flush=True)
ep = 0
while True:
    jb.emit(TelemetryEvent(T.EPOCH_COMPLETED, ep, message='x' * (ep % 300), data={'val/acc': ep / 7, 'nan': float('nan')}))
    ep += 1
"""

def test_jsonl_every_line_is_valid_json_after_sigkill(tmp_path):
    p = tmp_path / 'events.jsonl'
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(p)], stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout.readline().strip() == b'ready'
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL); proc.wait()
    lines = [l for f in [p.with_name('events.jsonl.2'), p.with_name('events.jsonl.1'), p] if f.exists()
             for l in f.read_text().splitlines()]
    assert len(lines) > 100
    strict = lambda c: (_ for _ in ()).throw(ValueError(f'non-strict JSON constant {c}'))
    rows = [json.loads(l, parse_constant=strict) for l in lines]   # NaN would raise here
    assert rows[-1]['data']['nan'] is None

def test_jsonl_trims_a_torn_last_line_on_open(tmp_path):
    p = tmp_path / 'events.jsonl'
    jb = JsonlBackend(p); jb.emit(TelemetryEvent(T.EPOCH_COMPLETED, 0, data={'val/acc': 0.5})); jb.close()
    with open(p, 'ab') as f: f.write(b'{"type": "epoch_completed", "epo')      # a write torn by power loss
    jb = JsonlBackend(p); jb.emit(TelemetryEvent(T.EPOCH_COMPLETED, 1, data={'val/acc': 0.6})); jb.close()
    assert [r['epoch'] for r in read_jsonl(p)] == [0, 1]

@pytest.mark.parametrize('kwargs, field', [
    ({'grad_every': -1}, 'grad_every'), ({'profile': 'verbose'}, 'profile'), ({'wandb_mode': 'cloud'}, 'wandb_mode'),
    ({'jsonl_max_bytes': 0}, 'jsonl_max_bytes'), ({'jsonl_backups': -2}, 'jsonl_backups'),
    ({'jsonl_min_interval_s': -1.0}, 'jsonl_min_interval_s'), ({'wandb_init_timeout_s': 0}, 'wandb_init_timeout_s'),
    ({'wandb_project': ''}, 'wandb_project'), ({'per_class': 'maybe'}, 'per_class'), ({'grad_evry': 3}, 'grad_evry'),
    ({'sharpness': True}, 'sharpness')])
def test_invalid_config_is_rejected_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field): TelemetryConfig(**kwargs)

def test_from_profile_rejects_unknown_names_and_bad_overrides():
    with pytest.raises(ValueError, match="profile: unknown profile 'loud'"): TelemetryConfig.from_profile('loud')
    with pytest.raises(ValidationError, match='grad_every'): TelemetryConfig.from_profile('minimal', grad_every='often')
    assert TelemetryConfig.from_profile('diagnostic').sharpness and not TelemetryConfig.from_profile('standard').sharpness
