#!/usr/bin/env bash
# Start a local Prefect server with its UI, on loopback (Ctrl-C stops it):
#
#   bash scripts/prefect-server.sh [NODE_FOLDER]
#
# With a node folder (where its node.toml is), the server keeps its database in that node's
# Prefect home, NODE_FOLDER/.prefect, which `emsbench node ...` uses too; without one, in
# PREFECT_HOME (default ~/.prefect). A PREFECT_HOME that is set always wins. PORT (default
# 4200) chooses the port; the API, the UI and the URL the UI calls all use it. In the node's
# shell, run the export line printed below, then `emsbench node serve` or `emsbench node run`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -gt 1 ]; then
  echo "usage: $0 [NODE_FOLDER]" >&2
  exit 2
fi
if [ $# -eq 1 ]; then
  if [ ! -d "$1" ]; then
    echo "$0: $1 is not a folder (give the folder of the node's node.toml)" >&2
    exit 2
  fi
  export PREFECT_HOME="${PREFECT_HOME:-$(cd "$1" && pwd)/.prefect}"
fi
PORT=${PORT:-4200}
case "$PORT" in
  ''|*[!0-9]*) echo "$0: PORT must be a number, not '$PORT'" >&2; exit 2 ;;
esac
url="http://127.0.0.1:$PORT"
if [ -n "${PREFECT_HOME:-}" ]; then
  mkdir -p "$PREFECT_HOME"
  chmod 700 "$PREFECT_HOME"
fi
# `prefect server start --port` alone serves on the port but leaves the UI calling the API
# on the default one (4200): the UI learns its API URL from the server's settings
# (/ui-settings), so give the server the same port and that URL.
unset PREFECT_API_URL
export PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT="$PORT"
export PREFECT_UI_API_URL="$url/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
echo "Prefect UI: $url    database: ${PREFECT_HOME:-$HOME/.prefect}/prefect.db"
echo "in the node's shell:"
echo "  export PREFECT_API_URL=$url/api"
exec "$root/.venv/bin/prefect" server start --host 127.0.0.1 --port "$PORT"
