#!/usr/bin/env bash
# `make serve`: a local Prefect server (its SQLite database under data/prefect) and the
# deployments served from one process. Ctrl-C, SIGINT or SIGTERM stops both. PREFECT_PORT
# (default 4200) is the server's port; the CLI attaches to a server on the same port.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${PREFECT_PORT:-4200}"
export PREFECT_HOME="${PREFECT_HOME:-$PWD/data/prefect}"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"

# Its own session, so Ctrl-C reaches the deployments first; the server stops after them.
setsid "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$PREFECT_HOME/server.log" 2>&1 &
server=$!
trap 'kill -- -"$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; echo "stopped"' EXIT
echo "starting the Prefect server (log: $PREFECT_HOME/server.log)..."
until "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { tail -20 "$PREFECT_HOME/server.log"; exit 1; }
  sleep 1
done
echo "Prefect UI: http://127.0.0.1:$PORT   (Ctrl-C stops the deployments and the server)"
# In the background: bash runs no trap while a foreground command runs, so a SIGTERM or
# SIGINT sent to this script's PID alone (a container's stop, systemd) would wait for ever.
# Either becomes a SIGTERM to the deployments' process (Prefect's runner stops gracefully on
# it); once that has ended, the EXIT trap stops the server.
"$BIN/python" deployments/serve.py &
serving=$!
trap 'kill -TERM "$serving" 2>/dev/null || true' INT TERM
status=0
wait "$serving" || status=$?
if ((status > 128)); then  # the wait was cut short by the signal: wait for the stop itself
  status=0
  wait "$serving" || status=$?
fi
exit "$status"
