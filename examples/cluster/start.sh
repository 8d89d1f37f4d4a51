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
# ./raftkv-cluster), RAFTKV_BIN (a raftkv binary; default: the repository's
# bin/raftkv, built with 'make build' only when it is missing or older than a
# source file), HTTP_PORT, RAFT_PORT, MGMT_PORT (the first node's ports; the
# others count up), LEADER_TIMEOUT (seconds to wait for a leader; default 60).
# Running it again restarts stopped nodes with their data: each node is
# started with the same command line every time. It exits non-zero when a
# node does not start or serve, or when the cluster elects no leader.
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
  bin=$root/bin/raftkv
  # Rebuild only when a source of the binary changed since it was built.
  if [ ! -x "$bin" ] || [ -n "$(cd "$root" && find . -path ./bin -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum -o -name '*.wasm' \) -newer "$bin" -print -quit)" ]; then
    echo "building $bin (make build)"
    make -C "$root" build >/dev/null
  else
    echo "using $bin (current)"
  fi
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

# wait_healthy waits until health --cluster passes: every member answers,
# knows a leader and has caught up. A cluster that elects no leader fails.
endpoints=http://127.0.0.1:$http_port,http://127.0.0.1:$((http_port + 1)),http://127.0.0.1:$((http_port + 2))
wait_healthy() {
  local deadline=$((SECONDS + ${LEADER_TIMEOUT:-60})) out
  until out=$("$bin" health --cluster --endpoints "$endpoints" --timeout 5s 2>&1); do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the cluster has no leader, or a member is unhealthy, after ${LEADER_TIMEOUT:-60}s:" >&2
      echo "$out" >&2
      exit 1
    fi
    sleep 0.5
  done
}
wait_healthy

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
wait_healthy # now with every member joined
"$bin" status --addr "http://127.0.0.1:$http_port"
