#!/usr/bin/env bash
# Build the docs site into _docs/: nbdev processes the notebooks into _proc/ (running their import,
# export and show_doc cells, so any notebook error fails the build), then Quarto renders _proc/ when it
# is installed, else the pure-Python smalldocs renderer does. Installs nothing: nbdev's Python API is
# called directly, because its command-line tools `pip install -e` the current folder when Quarto is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${ESPER_BIN:-.venv/bin}
export IN_TEST=1 WANDB_MODE=disabled MPLBACKEND=Agg
rm -rf _proc _docs
"$B/python" - <<'EOF'
from nbdev.quarto import refresh_quarto_yml
from nbdev.doclinks import _build_modidx
from nbdev.serve import proc_nbs
refresh_quarto_yml()  # nbs/nbdev.yml from settings.ini (title, urls); _quarto.yml is ours
_build_modidx()
proc_nbs(n_workers=0)  # in this process: a failing cell raises here and stops the build
EOF
if command -v quarto >/dev/null; then
  (cd _proc && quarto render --no-execute)
else
  "$B/smalldocs" render --quiet _proc 2> >(grep -v "output-file is not read by smalldocs" >&2)
fi
mv _proc/_docs _docs
echo "docs: $(find _docs -name '*.html' | wc -l) pages in _docs/ ($(command -v quarto >/dev/null && echo quarto || echo smalldocs))"
