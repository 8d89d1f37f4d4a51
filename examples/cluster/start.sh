#!/usr/bin/env bash
# Starts a local 3-node raftkv cluster on 127.0.0.1 and waits until it serves.
#
#   examples/cluster/start.sh        # n1 bootstraps, n2 and n3 join through n1
#   raftkv members                   # (--addr defaults to n1, http://127.0.0.1:8080)
#   examples/cluster/stop.sh
#
#   node  HTTP API               Raft (SSH)       management
#   n1    http://127.0.0.1:8080  127.0.0.1:8088   127.0.0.1:6000
#   n2    http://127.0.0.1:8081  127.0.0.1:8089   127.0.0.1:6001
#   n3    http://127.0.0.1:8082  127.0.0.1:8090   127.0.0.1:6002
#
# Environment: RAFTKV_CLUSTER_DIR (data, logs and pid files; default
# ./raftkv-cluster), RAFTKV_BIN (a raftkv binary; default: built into
# $RAFTKV_CLUSTER_DIR/raftkv), HTTP_PORT, RAFT_PORT, MGMT_PORT (the first
# node's ports; the others count up). Running it again restarts stopped nodes
# with their data: each node is started with the same command line every time.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${RAFTKV_CLUSTER_DIR:-$PWD/raftkv-cluster}
http_port=${HTTP_PORT:-8080}
raft_port=${RAFT_PORT:-8088}
mgmt_port=${MGMT_PORT:-6000}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

bin=${RAFTKV_BIN:-}
if [ -z "$bin" ]; then
  bin=$dir/raftkv
  echo "building $bin"
  (cd "$root" && go build -o "$bin" ./cmd/raftkv)
fi

first_mgmt=127.0.0.1:$mgmt_port
for i in 1 2 3; do
  id=n$i
  pidfile=$dir/$id.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$id is already running (pid $(cat "$pidfile"))"
    continue
  fi
  args=(serve --node-id "$id" --data-dir "$dir/$id"
    --http-addr "127.0.0.1:$((http_port + i - 1))"
    --raft-addr "127.0.0.1:$((raft_port + i - 1))"
    --mgmt-addr "127.0.0.1:$((mgmt_port + i - 1))"
    --plugin-cache-dir "$dir/wasm-cache")
  if [ "$i" -gt 1 ]; then
    args+=(--join "$first_mgmt") # ignored once the node has data
  fi
  nohup "$bin" "${args[@]}" >>"$dir/$id.log" 2>&1 &
  echo $! >"$pidfile"
  echo "started $id (pid $!), HTTP http://127.0.0.1:$((http_port + i - 1)), log $dir/$id.log"
done

# Wait until every node serves the KV plugin from its own state.
for i in 1 2 3; do
  addr=http://127.0.0.1:$((http_port + i - 1))
  for _ in $(seq 1 300); do
    if out=$("$bin" get --addr "$addr" --consistency stale --timeout 2s raftkv-cluster-probe 2>&1) ||
      [[ $out == *"key not found"* ]]; then
      break
    fi
    if ! kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; then
      echo "n$i exited; see $dir/n$i.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  [[ $out == *"key not found"* ]] || { echo "n$i is not serving: $out" >&2; exit 1; }
done
"$bin" status --addr "http://127.0.0.1:$http_port"
