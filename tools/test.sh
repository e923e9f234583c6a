#!/usr/bin/env bash
# Run every check CI runs: notebooks and library in sync, the docs site builds, notebook lesson cells, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=offline WANDB_SILENT=true MPLBACKEND=Agg
B=.venv/bin
state() { git status --porcelain --untracked-files=all -- esper nbs; git diff -- esper nbs | md5sum; }
before=$(state)
$B/nbdev_export
$B/nbdev_clean
if [ "$before" != "$(state)" ]; then
  echo "FAIL: nbdev_export or nbdev_clean changed files; run them and commit the result:" >&2
  git status --short -- esper nbs >&2
  exit 1
fi
echo "sync: nbdev_export and nbdev_clean left no change"
bash tools/docs.sh  # the docs site, built from this checkout: any notebook error fails CI here
$B/nbdev_test --n_workers 2
echo "nbdev_test: all notebooks passed"
$B/pytest -q tests
