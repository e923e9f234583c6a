"Studies and episode generation on a real local Ray cluster: the same records as the local backend, a worker killed mid-study, a bad --address."
import json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path
import numpy as np
import pytest
import ray
from esper.backends import Backend, connect
from esper.config import RunConfig
from esper.simic.evaluate import PolicySpec, evaluate, load_records
from esper.simic.frontier import run_study
from esper.simic.episodes import episode_files
from esper.simic.rewards import RewardConfig
from esper.simic.search import play_job

ENV = {**os.environ, 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1'}
TINY = RunConfig.preset('tiny', epochs=2)
SPECS = [PolicySpec('static', 'static'), PolicySpec('periodic', 'periodic', kwargs={'every': 1})]
SEEDS = [0, 1]

def same_run(r:dict) -> dict:
    "A record without what may differ between two runs of the same job: wall-clock times."
    return {k: ([{m: v for m, v in h.items() if not m.startswith('time/')} for h in r[k]] if k == 'history' else r[k])
            for k in r if k != 'wall_s'}

def one_line_error(r:subprocess.CompletedProcess, *words):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr

# A wrong address is checked in a fresh process: a Ray session is per process, and the fixture's is already open.
def test_unreachable_address_is_one_line_within_30s(tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-m', 'esper.cli', 'evaluate', '--preset', 'tiny', '--backend', 'ray',
                        '--address', '127.0.0.1:1', '--out', str(tmp_path / 'study')], capture_output=True, text=True, timeout=60, env=ENV)
    assert time.perf_counter() - t0 < 30
    one_line_error(r, '--address 127.0.0.1:1', 'no Ray cluster answers')
    assert not list(tmp_path.iterdir())  # nothing written

def test_port_that_is_not_ray_is_one_line_within_30s():
    "A port that accepts TCP but speaks no Ray: ray.init would retry for minutes; connect gives up after CONNECT_TIMEOUT_S."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); s.listen()
        code = ("import esper.backends as b, sys\nb.CONNECT_TIMEOUT_S = 3\ntry: b.connect(b.Backend('ray', address=sys.argv[1]))\n"
                "except ConnectionError as e: print(e, file=sys.stderr); sys.exit(2)")
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, '-c', code, f'127.0.0.1:{s.getsockname()[1]}'], capture_output=True, text=True, timeout=60, env=ENV)
    assert time.perf_counter() - t0 < 30
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'no Ray cluster connected within 3 s' in r.stderr, r.stderr[-2000:]  # Ray's own retry logs held back

@pytest.fixture(scope='module')
def cluster():
    "A local Ray instance with 2 CPUs on this machine, shared by the tests below."
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level='WARNING')
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()

@pytest.fixture(scope='module')
def local(tmp_path_factory):
    "The tiny study (2 policies x 2 seeds) on the local backend: in this process, one torch thread."
    return run_study(TINY, SPECS, SEEDS, tmp_path_factory.mktemp('local'), backend=Backend(threads=1))

def test_units_and_errors(cluster):
    xs = [3, -1, 4, -1, 5]
    assert sorted(Backend('ray').imap(abs, xs)) == list(enumerate(map(abs, xs)))
    for b in (Backend('ray'), Backend(workers=2)):  # a unit's own error arrives as itself, from Ray and from a process pool
        with pytest.raises(ValueError, match="invalid literal for int"): list(b.imap(int, ['1', 'two']))

def test_study_on_ray_equals_local(cluster, local, tmp_path):
    recs = run_study(TINY, SPECS, SEEDS, tmp_path, backend=Backend('ray'))
    assert [(r['label'], r['seed']) for r in recs] == [('static', 0), ('static', 1), ('periodic', 0), ('periodic', 1)]
    assert [same_run(r) for r in recs] == [same_run(r) for r in local]

def _ppid(pid:int) -> int:
    return int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[1])

def _runs_in_flight() -> list[int]:
    "PIDs of this test's Ray worker processes that are running a unit now (Ray titles them `ray::<function>`)."
    out = []
    for d in Path('/proc').iterdir():
        try:
            if not d.name.isdigit() or not (d / 'cmdline').read_bytes().startswith(b'ray::run_unit'): continue
            pid = int(d.name)
            while pid > 1 and pid != os.getpid(): pid = _ppid(pid)  # only our own cluster's workers
            if pid == os.getpid(): out.append(int(d.name))
        except (OSError, ValueError, IndexError): pass  # a process that ended while we looked
    return out

def _kill_one_run(killed:list):
    "Within 20 s, SIGKILL one worker process that is running a unit."
    t0 = time.time()
    while not killed and time.time() - t0 < 20:
        for pid in _runs_in_flight()[:1]:
            os.kill(pid, signal.SIGKILL); killed.append(pid)
        time.sleep(0.05)

def test_worker_killed_mid_study_loses_nothing(cluster, local, tmp_path):
    killed, seen = [], []
    def progress(r):
        seen.append(r)
        if len(seen) == 1: _kill_one_run(killed)  # one run is kept, the next ones are in flight: kill one of them
    recs = run_study(TINY, SPECS, SEEDS, tmp_path, backend=Backend('ray'), progress=progress)
    assert killed, 'no worker was running a unit after the first record'
    assert len(seen) == 4 and [same_run(r) for r in recs] == [same_run(r) for r in local]  # every run arrived once, as on the local backend
    assert [same_run(r) for r in load_records(tmp_path, [s.label for s in SPECS], SEEDS)] == [same_run(r) for r in local]

def test_without_retries_a_killed_worker_fails_the_unit(cluster):
    "The control: the same kill with max_retries=0 loses the unit, so the test above shows Ray's retry at work."
    killed = []
    t = threading.Thread(target=_kill_one_run, args=(killed,)); t.start()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        list(Backend('ray', max_retries=0).imap(time.sleep, [5.0]))
    t.join(); assert killed

def core(r:dict) -> tuple:
    "What a run learned, in any record form (full or slimmed history)."
    return r['test_acc'], r['train_flops'], r['params'], r['fossils'], [h['val/acc'] for h in r['history']]

def test_cli_on_the_cluster_address(cluster, local, tmp_path):
    "esper evaluate in another process, connected to this cluster by --address, gives the local backend's runs."
    out = tmp_path / 'study'
    r = subprocess.run([sys.executable, '-m', 'esper.cli', 'evaluate', '--preset', 'tiny', '--epochs', '2', '--policies', 'static',
                        '--seeds', '0,1', '--backend', 'ray', '--address', cluster, '--out', str(out)],
                       capture_output=True, text=True, timeout=300, env={**ENV, 'RAY_AUTH_MODE': 'token'})  # an explicit address opts in to the token
    assert r.returncode == 0, r.stderr[-3000:]
    assert '[2/2]' in r.stdout and json.loads((out / 'config.json').read_text())['backend']['kind'] == 'ray'
    recs = json.loads((out / 'records.json').read_text())
    assert [core(x) for x in recs] == [core(x) for x in local if x['label'] == 'static']
    assert len(list((out / 'records').glob('*.json'))) == 2

def episode_jobs(n:int) -> list[dict]:
    "`n` episode jobs of the tiny task, as `esper generate` builds them (a heuristic and a random behaviour in turn)."
    env = dict(preset='tiny', reward_config=RewardConfig.preset('default').__dict__, time_limit='terminate', seed_pool=None, variants=None)
    return [{'env': env, 'policy': ['heuristic:0.3', 'random'][k % 2], 'reset_seed': 100 + k, 'keep_episode': True} for k in range(n)]

def same_episodes(a:list[dict], b:list[dict]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))

@pytest.fixture(scope='module')
def local_episodes():
    return [r['episode'] for r in Backend(threads=1).map(play_job, episode_jobs(4))]

def test_episodes_on_ray_equal_local(cluster, local_episodes):
    "Episodes played as Ray tasks, two per task, are the local backend's, in episode order."
    assert same_episodes([r['episode'] for r in Backend('ray').map(play_job, episode_jobs(4), batch=2)], local_episodes)

def test_cli_generate_on_the_cluster_address(cluster, local_episodes, tmp_path):
    out = tmp_path / 'episodes'
    r = subprocess.run([sys.executable, '-m', 'esper.cli', 'generate', '--preset', 'tiny', '--episodes', '4', '--seed', '100',
                        '--behaviour', 'heuristic:0.3', '--behaviour', 'random', '--backend', 'ray', '--address', cluster,
                        '--episodes-per-task', '2', '--out', str(out), '--runs-dir', str(tmp_path / 'runs')],
                       capture_output=True, text=True, timeout=300, env={**ENV, 'RAY_AUTH_MODE': 'token'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert '[4/4]' in r.stdout
    saved = [dict(np.load(f)) for f in episode_files(out)]
    assert [int(e.pop('index')) for e in saved] == [0, 1, 2, 3] and len({str(e.pop('job')) for e in saved}) == 1  # generate's job tags
    assert same_episodes(saved, local_episodes)
