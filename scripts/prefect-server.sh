#!/usr/bin/env bash
# Start a local Prefect server with its UI for a node (Ctrl-C stops it). In the node's shell,
# run the export line printed below, then `emsbench node run`; the runs show in the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-4200}
echo "UI: http://127.0.0.1:$PORT    in the node's shell:"
echo "  export PREFECT_API_URL=http://127.0.0.1:$PORT/api"
unset PREFECT_API_URL
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
exec .venv/bin/prefect server start --host 127.0.0.1 --port "$PORT"
