#!/usr/bin/env bash
# Install, then run lint, type checks and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy emsbench node hub bench
echo "== pytest"; exec .venv/bin/pytest "$@"
