#!/usr/bin/env bash
# Builds the parity tier's environment (a separate venv: the reference packages never enter the
# project's own) and, with --run, runs it:  bash scripts/parity_env.sh [VENV_DIR] [--run]
# Default VENV_DIR: .venv-parity in the repository root. torch is pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-parity
RUN=0
for arg in "$@"; do
  case "$arg" in
    --run) RUN=1 ;;
    *) VENV="$arg" ;;
  esac
done
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q -c constraints.txt)
"${PIP[@]}" -e ".[test,parity]"
# Only model/metric files of these two are imported (by file path, their __init__ never runs);
# their declared dependencies (decord, ssr-eval, ...) are not needed and are not installed.
"${PIP[@]}" --no-deps imagebind-unofficial==0.1.1 audioldm-eval==0.0.3
if [ "$RUN" = 1 ]; then
  "$VENV/bin/python" -m pytest -m parity tests/parity -q
fi
