#!/usr/bin/env bash
# Install everything Esper needs into ./.venv; safe to run again (it only adds what is missing).
# Used by both README commands, so the main job and the tests run on the same environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch and torchvision are installed together as a pair known to import cleanly on CPU and GPU.
.venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
# The offline default dataset: real Fashion-MNIST from Debian's package dataset-fashion-mnist.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${ESPER_DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: Fashion-MNIST not found; run 'sudo apt-get install dataset-fashion-mnist' or set ESPER_DATA" >&2
  fi
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, esper; print(f"esper {esper.__version__}, torch {torch.__version__}")'))"
