#!/usr/bin/env bash
# Install, then federate six countries for three years on synthetic data and write the
# annual report (HTML and PDF), the public site and the open data.
# Extra arguments go to `emsbench demo` (e.g. --scale 0.05 --out /tmp/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Chromium prints the report's PDF (installed with Debian's package when missing; without
# root the demo writes the HTML and says how to get the PDF).
bash scripts/browser.sh
exec .venv/bin/emsbench demo "$@"
