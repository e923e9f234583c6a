"The docs site: it builds from a clean checkout without starting a run, its notebooks are safe to process, its sidebar lists every page."
import ast, fnmatch, json, os, shutil, subprocess, sys, time
from pathlib import Path
import pytest, yaml
from execnb.nbio import read_nb
from nbdev.process import extract_directives
from nbdev.processors import _do_eval

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if not any(s.startswith(('.', '_')) for s in p.relative_to(ROOT / 'nbs').parts))
DOCS_BOUND_S = 300  # processing every notebook takes seconds; a training run or a study would take minutes

def code_cells(nb_path):
    "The code cells of a notebook, with their `#|` directives."
    cells = [c for c in read_nb(nb_path).cells if c.cell_type == 'code']
    for c in cells: c.directives_ = extract_directives(c, remove=False)
    return cells

def is_export(cell): return bool(cell.directives_.keys() & {'export', 'exports', 'exporti'})

def tree_snapshot(*folders):
    "Every file under `folders` with its size and modification time."
    return {(str(p), p.stat().st_size, p.stat().st_mtime_ns) for f in folders if f.exists() for p in f.rglob('*') if p.is_file()}

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "A clean checkout (the tracked files only) with `tools/docs.sh` run in it: (checkout, seconds, result)."
    co = tmp_path_factory.mktemp('checkout')
    for rel in subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout.decode().split('\0'):
        if rel and (ROOT / rel).is_file():
            (co / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, co / rel, follow_symlinks=False)
    (co / '.venv').symlink_to(ROOT / '.venv')
    before = tree_snapshot(co / 'results', co / 'runs', co / 'wandb')
    env = {**os.environ, 'PYTHONPATH': str(co), 'ESPER_BIN': str(Path(sys.executable).parent)}
    t = time.perf_counter()
    res = subprocess.run(['bash', 'tools/docs.sh'], cwd=co, env=env, capture_output=True, text=True, timeout=DOCS_BOUND_S)
    return co, time.perf_counter() - t, res, before

def test_docs_build_from_a_clean_checkout(built):
    co, secs, res, _ = built
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    pages = {p.relative_to(co / '_docs').as_posix() for p in (co / '_docs').rglob('*.html')}
    assert {'index.html', 'architecture.html', 'results.html', '12_kasmina.slot.html'} <= pages, sorted(pages)
    assert any(p.startswith('tutorials/') for p in pages)

def test_docs_build_starts_no_training_run(built):
    co, secs, res, before = built
    assert secs < DOCS_BOUND_S
    assert tree_snapshot(co / 'results', co / 'runs', co / 'wandb') == before, "the docs build wrote under results/, runs/ or wandb/"
    assert not (co / 'runs').exists() and not (co / 'wandb').exists()

def test_docs_build_fails_on_a_notebook_error(built):
    "An import cell that raises, added to a module notebook, stops the build with a non-zero exit."
    co = built[0]
    nb_path = co / 'nbs' / '04_io.ipynb'
    good = nb_path.read_text()
    nb = json.loads(good)
    nb['cells'].insert(3, {'cell_type': 'code', 'execution_count': None, 'id': 'broken', 'metadata': {}, 'outputs': [],
                           'source': ['import esper.does_not_exist']})
    nb_path.write_text(json.dumps(nb))
    try:
        env = {**os.environ, 'PYTHONPATH': str(co), 'ESPER_BIN': str(Path(sys.executable).parent)}
        res = subprocess.run(['bash', 'tools/docs.sh'], cwd=co, env=env, capture_output=True, text=True, timeout=DOCS_BOUND_S)
    finally: nb_path.write_text(good)
    assert res.returncode != 0 and 'does_not_exist' in res.stderr, res.stderr[-2000:]

def test_no_cell_mixes_imports_with_other_code():
    "nbdev runs every cell that imports when it builds the docs: such a cell holds only imports (export cells too; an import in a function body counts)."
    bad = []
    for f in NBS:
        for c in code_cells(f):
            if not _do_eval(c): continue
            body = [n for n in ast.parse(c.source).body if not isinstance(n, (ast.Import, ast.ImportFrom))]
            if body and any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(ast.parse(c.source))): bad.append(f'{f.name} cell {c.idx_}')
    assert not bad, bad

def test_no_slow_cell_runs_in_a_docs_build():
    "A `slow` cell is never executed by the docs build, and a cell that starts an experiment is `slow` and `eval: false`."
    bad = []
    for f in NBS:
        for c in code_cells(f):
            slow = any(l.startswith('#|') and 'slow' in l for l in c.source.splitlines())
            eval_false = c.directives_.get('eval:', [''])[0].lower() == 'false'
            if slow and _do_eval(c): bad.append(f'{f.name} cell {c.idx_}: slow but run by the docs build')
            if 'subprocess.run(' in c.source and not is_export(c) and not (slow and eval_false): bad.append(f'{f.name} cell {c.idx_}: starts a command without slow and eval: false')
    assert not bad, bad

def test_notebooks_keep_a_kernelspec():
    "JupyterLab opens every notebook without asking for a kernel (nbdev_clean keeps `kernelspec`)."
    missing = [f.name for f in NBS if 'kernelspec' not in read_nb(f).metadata]
    assert not missing, missing

def sidebar_patterns(contents):
    "Every page path or glob of a Quarto sidebar `contents:` list."
    for c in contents if isinstance(contents, list) else [contents]:
        if isinstance(c, str): yield c
        elif isinstance(c, dict) and 'contents' in c: yield from sidebar_patterns(c['contents'])
        elif isinstance(c, dict) and 'href' in c: yield c['href']

def test_sidebar_lists_every_page_once():
    "The curated sidebar: Tutorials and Results first, every notebook in exactly one place, no config files."
    cfg = yaml.safe_load((ROOT / 'nbs/_quarto.yml').read_text())
    contents = cfg['website']['sidebar']['contents']
    pats = list(sidebar_patterns(contents))
    assert not [p for p in pats if p.endswith(('.yml', '.css'))]
    assert [c['section'] if isinstance(c, dict) else c for c in contents][:3] == ['index.ipynb', 'Tutorials', 'results.ipynb']
    for f in NBS:
        rel = f.relative_to(ROOT / 'nbs').as_posix()
        hits = [p for p in pats if fnmatch.fnmatch(rel, p) and ('/' in p) == ('/' in rel)]
        assert len(hits) == 1, f'{rel} matches sidebar entries {hits}'
    assert 'sidebar.yml' not in cfg.get('metadata-files', [])

def test_docs_cite_no_design_file():
    "The docs link to the architecture page instead of citing a design file that is not in the repository."
    hits = [f.name for f in NBS if 'DESIGN' in f.read_text()]
    assert not hits, hits
