#!/usr/bin/env bash
# Install, then run lint, type checks and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The PostgreSQL server programs, for the tests of the node's PostgreSQL input (quiet and
# quick when they are there already; the demo does not need them).
bash scripts/postgres.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy emsbench node hub bench
echo "== pytest"; exec .venv/bin/pytest "$@"
