#!/usr/bin/env bash
# Lint the repository as CI does: flake8 and isort (settings in setup.cfg).
#   bash tools/lint.sh          # check
#   bash tools/lint.sh --fix    # sort imports in place, then check
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
PATHS=(cast_mm configs tests tools setup.py)
if [ "${1:-}" = "--fix" ]; then
  "$PY" -m isort "${PATHS[@]}"
fi
"$PY" -m flake8 "${PATHS[@]}"
"$PY" -m isort --check-only --diff "${PATHS[@]}"
echo "[cast_mm lint] flake8 and isort: clean"
