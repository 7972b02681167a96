#!/usr/bin/env bash
# Create .venv with everything Sorter needs to run, train and be tested. Idempotent: a second run
# returns at once unless pyproject.toml or the constraints changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
stamp=.venv/.sorter-installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned to the build on this machine's disk; everything else is held to it.
pip install -q -c requirements/constraints.txt torch torchvision
pip install -q -c requirements/constraints.txt -e ".[gui,train,dev]"
echo "$want" > "$stamp"
echo "bootstrap: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
