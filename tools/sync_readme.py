"""Write README.md from the markdown cells of nbs/index.ipynb (nbdev_readme needs Quarto, which is not
installable offline). tests/test_repo.py checks README.md is what this script writes."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/sync_readme.py; do not edit by hand. -->\n\n"

def render() -> str:
    "The README text for the current index notebook."
    cells = json.loads((ROOT / 'nbs/index.ipynb').read_text())['cells']
    md = '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
    return HEADER + md.replace('```{mermaid}', '```mermaid') + '\n'

if __name__ == '__main__':
    (ROOT / 'README.md').write_text(render())
    print('README.md written from nbs/index.ipynb', file=sys.stderr)
