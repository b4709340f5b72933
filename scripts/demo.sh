#!/usr/bin/env bash
# Install, then federate six countries on synthetic data and write the benchmark report.
# Extra arguments go to `emsbench demo` (e.g. --scale 0.05 --out /tmp/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/emsbench demo "$@"
