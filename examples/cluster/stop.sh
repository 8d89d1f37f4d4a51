#!/usr/bin/env bash
# Stops the nodes started by start.sh with SIGTERM (a graceful shutdown) and
# waits for them. Their data stays in $RAFTKV_CLUSTER_DIR (default
# ./raftkv-cluster); add --clean to delete it.
set -euo pipefail
dir=${RAFTKV_CLUSTER_DIR:-$PWD/raftkv-cluster}
pids=()
for i in 1 2 3; do
  pidfile=$dir/n$i.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  rm -f "$pidfile"
  if kill -TERM "$pid" 2>/dev/null; then
    pids+=("$pid")
    echo "stopping n$i (pid $pid)"
  fi
done
for pid in "${pids[@]}"; do
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid did not stop within 30s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
if [ "${1:-}" = "--clean" ]; then
  rm -rf "$dir"
  echo "removed $dir"
fi
