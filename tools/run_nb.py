"""Execute a notebook in place and keep its outputs, optionally skipping cells flagged `#| slow` (their stored
outputs, if any, are kept). Usage: .venv/bin/python tools/run_nb.py nbs/results.ipynb [--run-slow]"""
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

def main(path:str, run_slow:bool=False) -> None:
    nb, p = read_nb(path), Path(path).resolve()
    os.chdir(p.parent)  # as nbdev_test does: notebooks read files relative to their folder
    slow = lambda c: c.cell_type == 'code' and re.search(r'^#\|\s*(slow|notest)\b', c.source, re.M)
    sh = CaptureShell(path=p.parent)
    sh.run_all(nb, exc_stop=True, preproc=lambda c: (not run_slow) and bool(slow(c)))
    write_nb(nb, p)

if __name__ == '__main__': main(sys.argv[1], '--run-slow' in sys.argv)
