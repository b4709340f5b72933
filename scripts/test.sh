#!/usr/bin/env bash
# Install, then run lint, type checks and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The PostgreSQL server programs, for the tests of the node's PostgreSQL input (quiet and
# quick when they are there already; the demo does not need them).
bash scripts/postgres.sh
# Chromium and poppler's pdfinfo/pdftoppm/pdftotext, for the report's PDF and the browser
# tests (tests/browser.py); quiet and quick when they are there already.
bash scripts/browser.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy emsbench node hub bench
echo "== pytest"; exec .venv/bin/pytest "$@"
