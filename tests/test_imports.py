"Import-order check: each esper module imports alone, and never from a higher notebook number."
import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def notebook_modules() -> dict[str, float]:
    "Map each exported module (`esper.x.y`) to the number of the notebook that exports it."
    out = {}
    for nb in sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        for c in cells:
            m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
            if m: out['esper.' + m.group(1)] = float(nb.name.split('_')[0]); break
    return out

MODULES = notebook_modules()

def esper_imports(mod: str) -> set[str]:
    "The esper modules that `mod`'s source imports."
    path = ROOT / (mod.replace('.', '/') + '.py')
    found, package = set(), mod.rsplit('.', 1)[0].split('.')
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            # nbdev writes `from esper.x import y` as the relative `from ..x import y`: resolve it
            base = '.'.join(package[:len(package) - node.level + 1]) if node.level else ''
            name = '.'.join(p for p in (base, node.module or '') if p)
            if not name.startswith('esper'): continue
            names = [f"{name}.{a.name}" for a in node.names]  # `from . import x` may import a module
            found |= {n for n in names if n in MODULES} or {name}
        elif isinstance(node, ast.Import): found |= {a.name for a in node.names if a.name.startswith('esper')}
    return found

def test_relative_imports_are_resolved():
    "The check must see nbdev's relative imports, or it would pass vacuously."
    assert 'esper.kasmina.slot' in esper_imports('esper.config')
    assert 'esper.contracts.stages' in esper_imports('esper.kasmina.slot')

def test_every_notebook_module_exists():
    assert len(MODULES) >= 4
    for mod in MODULES: assert (ROOT / (mod.replace('.', '/') + '.py')).exists(), f"{mod} not exported"

@pytest.mark.parametrize('mod', sorted(MODULES))
def test_imports_only_lower_bands(mod):
    for dep in esper_imports(mod):
        assert dep in MODULES, f"{mod} imports {dep}, which no notebook exports"
        assert MODULES[dep] < MODULES[mod], f"{mod} (notebook {MODULES[mod]:g}) imports {dep} (notebook {MODULES[dep]:g})"

def test_imports_alone_in_fresh_interpreters():
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
    # One interpreter per module: a module that only works after another was imported fails here.
    for mod in sorted(MODULES):
        r = subprocess.run([sys.executable, '-c', code, mod], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, f"{mod} fails to import alone:\n{r.stderr[-2000:]}"
