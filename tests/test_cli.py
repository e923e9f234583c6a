"The esper command in subprocesses: bad input is one line, a killed run leaves a loadable checkpoint."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from esper.trainer import load_checkpoint

ESPER = [sys.executable, '-m', 'esper.cli']

def esper(*args, env=None, **kw):
    return subprocess.run([*ESPER, *args], capture_output=True, text=True, timeout=300, env={**os.environ, 'WANDB_MODE': 'disabled', **(env or {})}, **kw)

@pytest.mark.parametrize('args', [['train', '--epochs', 'ten'], ['train', '--preset', 'huge'], ['train', '--slots', '1,1'],
                                  ['train', '--policy', 'clever'], ['evaluate', '--seeds', 'a,b'], ['frobnicate'],
                                  ['train', '--resume', '/nonexistent/run']])
def test_bad_arguments_exit_nonzero_with_one_line(args):
    r = esper(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr

def test_missing_dataset_is_one_clear_line(tmp_path):
    r = esper('train', '--dataset', 'cifar10', '--epochs', '1', '--runs-dir', str(tmp_path),
              env={'ESPER_DATA': str(tmp_path), 'ESPER_CACHE': str(tmp_path / 'cache')})
    assert r.returncode == 2 and r.stderr.count('\n') == 1
    assert 'cifar' in r.stderr.lower() and 'ESPER_DATA' in r.stderr

def test_sigterm_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    p = subprocess.Popen([*ESPER, 'train', '--preset', 'tiny', '--epochs', '40', '--policy', 'periodic', '--runs-dir', str(tmp_path), '--quiet'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, 'WANDB_MODE': 'disabled'})
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until a few epochs are checkpointed
        runs = list(tmp_path.iterdir())
        if runs and (runs[0] / 'events.jsonl').exists() and (runs[0] / 'events.jsonl').read_text().count('epoch_completed') >= 3: break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    ck = load_checkpoint(runs[0])
    assert 3 <= ck['epoch'] < 40
    r = esper('train', '--resume', str(runs[0]), '--quiet')
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(runs[0])['epoch'] == 40
