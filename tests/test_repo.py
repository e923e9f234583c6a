"Repository contracts: README quick start agrees with index.ipynb and .ci/run; environment.yml agrees with settings.ini."
import configparser, json, re, shlex
from pathlib import Path
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

def bash_blocks(md: str) -> list[str]:
    return [b.strip() for b in re.findall(r'```(?:bash|sh)\n(.*?)```', md, re.S)]

def index_markdown() -> str:
    cells = json.loads((ROOT / 'nbs/index.ipynb').read_text())['cells']
    return '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')

def test_readme_quick_start_matches_index():
    readme, index = bash_blocks((ROOT / 'README.md').read_text()), bash_blocks(index_markdown())
    assert len(index) >= 2, "index.ipynb must hold the two quick-start commands"
    assert readme[:2] == index[:2]

def test_ci_runs_the_readme_test_command():
    test_cmd = bash_blocks((ROOT / 'README.md').read_text())[1]
    ci_cmds = [l.strip() for l in (ROOT / '.ci/run').read_text().splitlines() if l.strip() and not l.startswith('#')]
    assert test_cmd in ci_cmds

def settings_requirements() -> dict[str, Requirement]:
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    reqs = [r for k in ('requirements', 'dev_requirements', 'ray_requirements') for r in shlex.split(cfg['DEFAULT'][k])]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}

def environment_pip() -> dict[str, Requirement]:
    lines = (ROOT / 'environment.yml').read_text().split('- pip:')[1].splitlines()
    reqs = [l.strip()[2:].strip() for l in lines if l.strip().startswith('- ') and not l.strip().startswith('- -e')]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}

def test_environment_yml_matches_settings_ini():
    ini, env = settings_requirements(), environment_pip()
    assert set(ini) == set(env), f"only in settings.ini: {set(ini) - set(env)}; only in environment.yml: {set(env) - set(ini)}"
    for name, req in env.items():
        pinned = [s.version for s in req.specifier if s.operator == '==']
        if pinned: assert ini[name].specifier.contains(pinned[0]), f"{name}: environment.yml pins {pinned[0]}, settings.ini wants {ini[name].specifier}"
        else: assert req.specifier == ini[name].specifier, f"{name}: {req.specifier} vs {ini[name].specifier}"

def test_readme_is_generated_from_index():
    import importlib.util
    spec = importlib.util.spec_from_file_location('sync_readme', ROOT / 'tools/sync_readme.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    assert (ROOT / 'README.md').read_text() == mod.render(), "README.md is stale: run .venv/bin/python tools/sync_readme.py"
