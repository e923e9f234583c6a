"The esper command in subprocesses: bad input is one line, a killed run leaves a loadable checkpoint."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from esper.run import load_run_checkpoint

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
    ck = load_run_checkpoint(runs[0]).state
    assert 3 <= ck['epoch'] < 40
    r = esper('train', '--resume', str(runs[0]), '--quiet')
    assert r.returncode == 0, r.stderr
    assert load_run_checkpoint(runs[0]).state['epoch'] == 40


# ---------------------------------------------------------------- one source for every fact

def test_every_config_field_is_a_flag_with_its_comment_as_help():
    from esper.cli import parser
    from esper.flags import config_flags
    from esper.config import RunConfig
    from esper.simic.ppo import PPOConfig
    from esper.simic.iql import IQLConfig
    from esper.simic.rewards import RewardConfig
    sub = parser()._subparsers._group_actions[0].choices
    helps = lambda cmd: {s: a.help for a in sub[cmd]._actions for s in a.option_strings}
    for cmd, cls, section in [('train', RunConfig, ''), ('evaluate', RunConfig, ''), ('generate', RunConfig, ''), ('generate', RewardConfig, 'reward'),
                              ('ppo', PPOConfig, ''), ('ppo', RunConfig, 'task'), ('ppo', RewardConfig, 'reward'), ('iql', IQLConfig, '')]:
        skip = {'preset', 'seed'} if cmd in ('evaluate', 'generate') and cls is RunConfig else {'preset'}
        for f in config_flags(cls, section, skip=skip):
            h = helps(cmd)
            assert f.option in h, (cmd, f.option)
            assert h[f.option] != f.key.split('.')[-1].replace('_', ' '), f"{cls.__name__}.{f.key} has no comment to serve as help"

def test_two_ppo_runs_leave_two_run_folders(tmp_path):
    import torch
    args = ['ppo', '--env', 'CartPole-v1', '--n-envs', '2', '--total-steps', '64', '--set', 'n_steps=16', '--runs-dir', str(tmp_path)]
    for _ in range(2): assert esper(*args).returncode == 0
    runs = sorted(tmp_path.iterdir())
    assert len(runs) == 2 and all(r.name.startswith('ppo__CartPole-v1__0__') for r in runs)
    for r in runs:
        assert {'config.json', 'meta.json', 'checkpoint.pt', 'history.json'} <= {p.name for p in r.iterdir()}
        ck = torch.load(r / 'checkpoint.pt', weights_only=True)
        assert ck['env_spec']['env_id'] == 'CartPole-v1' and ck['config']['n_steps'] == 16

def test_iql_curves_reach_an_offline_wandb_run(tmp_path):
    from esper.nissa.output import read_wandb_run
    eps = tmp_path / 'eps'
    assert esper('generate', '--preset', 'tiny', '--episodes', '2', '--out', str(eps), '--runs-dir', str(tmp_path / 'runs')).returncode == 0
    r = esper('iql', '--data', str(eps), '--preset', 'tiny', '--steps', '40', '--set', 'log_every=10', '--wandb', 'offline',
              '--runs-dir', str(tmp_path / 'runs'), env={'WANDB_MODE': 'offline', 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    run_dir = next((tmp_path / 'runs').glob('iql__eps__0__*'))
    got = read_wandb_run(run_dir / 'wandb')
    assert len([h for h in got['history'] if 'iql/q_loss' in h]) == 4 and (run_dir / 'policy.pt').exists()
    assert (got['group'], got['job_type']) == ('iql/eps', 'iql')
    lines = [l for l in r.stdout.splitlines() if l.startswith('step ')]  # a summary line of every loss, not 40 lines of one
    assert 1 <= len(lines) <= 10 and all(k in lines[-1] for k in ('step 40/40', 'q_loss', 'v_loss', 'policy_loss', 'cql_loss'))
    assert 'W&B: offline' in r.stdout

def test_resume_refuses_config_flags(tmp_path):
    r = esper('train', '--preset', 'tiny', '--epochs', '2', '--policy', 'static', '--runs-dir', str(tmp_path), '--quiet')
    assert r.returncode == 0, r.stderr
    r = esper('train', '--resume', str(next(tmp_path.iterdir())), '--epochs', '5')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'drop the config flags' in r.stderr


# ---------------------------------------------------------------- which errors are one line

def test_only_known_error_types_are_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import esper.cli as cli
    from esper.io import InputError, WriteError
    for exc, code in [(InputError('bad value'), 2), (cli.CLIError('esper: bad flag'), 2), (WriteError('cannot write x: disk full'), 1), (KeyboardInterrupt(), 130)]:
        monkeypatch.setattr(cli, 'cmd_train', lambda args, e=exc: (_ for _ in ()).throw(e))
        assert cli.main(['train']) == code
        assert capsys.readouterr().err.count('\n') == 1
    monkeypatch.setattr(cli, 'cmd_train', lambda args: {}['a bug'])
    with pytest.raises(KeyError): cli.main(['train'])
    monkeypatch.setattr(cli, 'cmd_train', lambda args: int('a bug'))  # a ValueError from Esper's own code is a bug too
    with pytest.raises(ValueError): cli.main(['train'])

def test_a_message_that_quotes_a_multiline_value_is_still_one_line(capsys):
    from esper.cli import main
    from esper.io import InputError
    import esper.cli as cli
    assert cli._one_line(InputError('a\n  b\n')) == 'error: a b'
