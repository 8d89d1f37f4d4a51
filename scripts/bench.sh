#!/usr/bin/env bash
# bench.sh — the benchmark suite behind `make bench`.
#
# Builds bin/raftkv, starts a fresh local 3-node cluster on 127.0.0.1 (n1
# bootstraps, n2 and n3 join; fresh data directories under a temporary
# directory, logs to files there), waits for /readyz on every node, runs a
# fixed suite of `raftkv-bench` runs against the leader, prints one markdown
# table, and stops every node it started, whatever happens (trap EXIT).
#
# Then, to measure what WebAssembly costs end to end, it stops that cluster,
# starts a fresh one with `serve --native-kv` (the KV plugin's same Go code
# compiled into the host instead of run as kv.wasm), repeats the write c=64,
# write c=1 and read stale/linearizable c=64 runs on it, and prints a second
# table: each of those rows on wasm and on native side by side, with the
# wasm/native throughput ratio (1.00: WebAssembly costs nothing; 0.90: the
# wasm cluster does 10% fewer operations per second).
#
#   scripts/bench.sh                    # the full suite (a few minutes)
#   BENCH_SCALE=0.1 scripts/bench.sh    # every count ×0.1, for a quick run
#   BENCH_NATIVE=0 scripts/bench.sh     # the wasm suite only
#
# Environment:
#   BENCH_SCALE        multiplies every count below (default 1)
#   BENCH_WRITES_C1    writes with 1 client (default 20000)
#   BENCH_WRITES_C64   writes with 64 clients (default 100000)
#   BENCH_READS_C1     reads with 1 client, per consistency (default 20000)
#   BENCH_READS_C64    reads with 64 clients, per consistency (default 100000)
#   BENCH_MIXED        operations of the 90:10 mixed run, 64 clients (default 100000)
#   BENCH_PRELOAD      keys written before each read run (default 10000)
#   BENCH_PORT         first of 9 consecutive ports (default: a free range from 21000)
#   BENCH_SERVE_FLAGS  extra `raftkv serve` flags for every node
#   BENCH_NATIVE=0     skip the native-KV cluster and the wasm/native table
#   BENCH_KEEP=1       keep the temporary directory (data and logs); it is
#                      always kept when the script fails
#   GO                 the go command (default go)
#
# The table goes to standard output, progress and logs to standard error. Exit
# status: 0 when every run finished without errors.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
GO=${GO:-go}
scale=${BENCH_SCALE:-1}

# scaled N: N × BENCH_SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); if (v < 1) v = 1; print v }'; }
writes_c1=$(scaled "${BENCH_WRITES_C1:-20000}")
writes_c64=$(scaled "${BENCH_WRITES_C64:-100000}")
reads_c1=$(scaled "${BENCH_READS_C1:-20000}")
reads_c64=$(scaled "${BENCH_READS_C64:-100000}")
mixed=$(scaled "${BENCH_MIXED:-100000}")
preload=$(scaled "${BENCH_PRELOAD:-10000}")

log() { echo "bench.sh: $*" >&2; }

log "building bin/raftkv and bin/raftkv-bench"
mkdir -p bin
CGO_ENABLED=0 "$GO" build -trimpath -o bin/raftkv ./cmd/raftkv
CGO_ENABLED=0 "$GO" build -trimpath -o bin/raftkv-bench ./cmd/raftkv-bench
bin=$root/bin/raftkv
benchbin=$root/bin/raftkv-bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-bench.XXXXXX")
dir=$tmp # the running cluster's data directories and logs
pids=()
ok=0

# stop_nodes: SIGTERM every node started, wait for each (SIGKILL after 30 s).
stop_nodes() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop within 30s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

cleanup() {
  local status=$?
  stop_nodes
  if [ "$ok" = 1 ] && [ "${BENCH_KEEP:-}" != 1 ]; then
    rm -rf "$tmp"
  else
    log "data and logs kept in $tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

base=${BENCH_PORT:-}
if [ -z "$base" ]; then
  for candidate in $(seq 21000 10 21990); do
    free=1
    for p in $(seq "$candidate" $((candidate + 8))); do
      port_free "$p" || { free=0; break; }
    done
    if [ "$free" = 1 ]; then
      base=$candidate
      break
    fi
  done
  [ -n "$base" ] || { log "no 9 free consecutive ports in 21000-21998"; exit 1; }
fi
http_port() { echo $((base + $1 - 1)); }
raft_port() { echo $((base + 3 + $1 - 1)); }
mgmt_port() { echo $((base + 6 + $1 - 1)); }

# ready I: GET /readyz on node I answers 200 (bash's /dev/tcp: no curl needed).
ready() (
  exec 3<>"/dev/tcp/127.0.0.1/$(http_port "$1")" || exit 1
  printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || exit 1
  [[ $line == "HTTP/1."?" 200"* ]]
)

# start I [FLAGS...]: starts node nI in the background.
start() {
  local i=$1
  shift
  # shellcheck disable=SC2086 # BENCH_SERVE_FLAGS is a list of flags
  "$bin" serve --node-id "n$i" --data-dir "$dir/n$i" \
    --http-addr "127.0.0.1:$(http_port "$i")" \
    --raft-addr "127.0.0.1:$(raft_port "$i")" \
    --mgmt-addr "127.0.0.1:$(mgmt_port "$i")" \
    --plugin-cache-dir "$tmp/wasm-cache" \
    "$@" ${BENCH_SERVE_FLAGS:-} >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  log "started n$i (pid $!), http://127.0.0.1:$(http_port "$i"), log $dir/n$i.log"
}

# wait_ready I: waits up to 120 s for node I's /readyz.
wait_ready() {
  local i=$1 pid=${pids[$1 - 1]}
  for _ in $(seq 1 600); do
    if ready "$i" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "n$i exited; the end of its log:"
      tail -n 20 "$dir/n$i.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  log "n$i is not ready after 120s; the end of its log:"
  tail -n 20 "$dir/n$i.log" >&2
  exit 1
}

# wait_engine I ENGINE: waits up to 60 s for node I to log that the kv plugin
# runs on ENGINE (wasm or native), so that a table never mislabels a cluster.
wait_engine() {
  local i=$1 engine=$2
  for _ in $(seq 1 300); do
    if grep -Eq "plugin activated.* plugin=kv .*engine=$engine|plugin activated.*\"plugin\":\"kv\".*\"engine\":\"$engine\"" "$dir/n$i.log"; then
      return 0
    fi
    sleep 0.2
  done
  log "n$i has not logged the kv plugin running on $engine after 60s; the end of its log:"
  tail -n 20 "$dir/n$i.log" >&2
  exit 1
}

# start_cluster ENGINE [FLAGS...]: starts n1..n3 with FLAGS in $dir and waits
# until every node is ready and runs the kv plugin on ENGINE.
start_cluster() {
  local engine=$1 i
  shift
  mkdir -p "$dir"
  # n1 first, so that it compiles the KV plugin into the shared cache once.
  start 1 --bootstrap "$@"
  wait_ready 1
  start 2 --join "127.0.0.1:$(mgmt_port 1)" "$@"
  start 3 --join "127.0.0.1:$(mgmt_port 1)" "$@"
  wait_ready 2
  wait_ready 3
  for i in 1 2 3; do
    wait_engine "$i" "$engine"
  done
  "$bin" status --addr "http://127.0.0.1:$(http_port 1)" >&2
}

start_cluster wasm
addrs=http://127.0.0.1:$(http_port 1),http://127.0.0.1:$(http_port 2),http://127.0.0.1:$(http_port 3)

load_before=$(uptime)
rows=()
failed=0
# run LABEL FLAGS...: one bench run, every request to the leader unless
# FLAGS say --target follower; its markdown row goes into the table.
run() {
  local label=$1 row status=0
  shift
  log "$label: raftkv-bench $*"
  row=$("$benchbin" --addr "$addrs" --target leader --markdown --label "$label" "$@") || status=$?
  if [ -z "$row" ]; then
    row="| $label | | failed (exit $status) | | | | | |"
  fi
  [ "$status" = 0 ] || failed=1
  log "$row"
  rows+=("$row")
}

run "write" --op put --clients 1 --count "$writes_c1"
run "write" --op put --clients 64 --count "$writes_c64"
# The same writes sent to a follower, which forwards them to the leader.
run "write via a follower" --op put --clients 64 --count "$writes_c64" --target follower
run "read stale" --op get --consistency stale --clients 1 --count "$reads_c1" --preload "$preload"
run "read stale" --op get --consistency stale --clients 64 --count "$reads_c64" --preload "$preload"
run "read linearizable" --op get --consistency linearizable --clients 1 --count "$reads_c1" --preload "$preload"
run "read linearizable" --op get --consistency linearizable --clients 64 --count "$reads_c64" --preload "$preload"
run "mixed 90:10 (linearizable reads)" --op mixed --mix 90:10 --consistency linearizable --clients 64 --count "$mixed" --preload "$preload"
load_after=$(uptime)

echo
echo "$("$bin" version 2>/dev/null | head -n 1), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty'), 3 nodes on 127.0.0.1, $(nproc 2>/dev/null || echo '?') CPUs, 16 B keys, 100 B values, writes to new keys, BENCH_SCALE=$scale"
echo
echo "| op | clients | ops/s | p50 | p99 | p99.9 | max | errors |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
# ops/s of the row labelled LABEL with CLIENTS clients (fields: | op | clients | ops/s | ...).
ops_of() { printf '%s\n' "${rows[@]}" | awk -F'|' -v l="$1" -v c="$2" '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); gsub(/^ +| +$/, "", $4) } $2 == l && $3 == c { print $4 }'; }
awk -v d="$(ops_of write 64)" -v f="$(ops_of "write via a follower" 64)" 'BEGIN {
  if (d + 0 > 0 && f + 0 > 0) printf "writes c=64 through a follower / to the leader: %.2f (issue 15 target: 0.90)\n", f / d }'
echo "load before: ${load_before#*load average: }; after: ${load_after#*load average: }"

if [ "${BENCH_NATIVE:-1}" != 0 ]; then
  wasm_rows=("${rows[@]}")
  log "stopping the wasm cluster; starting a fresh one with --native-kv"
  stop_nodes
  dir=$tmp/native
  start_cluster native --native-kv
  rows=()
  load_before=$(uptime)
  run "write" --op put --clients 64 --count "$writes_c64"
  run "write" --op put --clients 1 --count "$writes_c1"
  run "read stale" --op get --consistency stale --clients 64 --count "$reads_c64" --preload "$preload"
  run "read linearizable" --op get --consistency linearizable --clients 64 --count "$reads_c64" --preload "$preload"
  load_after=$(uptime)

  echo
  echo "WebAssembly vs native Go (--native-kv), each on a fresh 3-node cluster, same counts"
  echo
  echo "| op | clients | wasm ops/s | native ops/s | wasm/native | wasm p50 | native p50 | wasm p99 | native p99 |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for native_row in "${rows[@]}"; do
    # The wasm row of the same op and client count (fields: | op | clients | ops/s | p50 | p99 | ...).
    key=$(awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); print $2 "|" $3 }' <<<"$native_row")
    wasm_row=
    for row in "${wasm_rows[@]}"; do
      if [ "$(awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); print $2 "|" $3 }' <<<"$row")" = "$key" ]; then
        wasm_row=$row
      fi
    done
    printf '%s\n%s\n' "$wasm_row" "$native_row" | awk -F'|' '
      function trim(s) { gsub(/^ +| +$/, "", s); return s }
      NR == 1 { w_ops = trim($4); w_p50 = trim($5); w_p99 = trim($6) }
      NR == 2 {
        n_ops = trim($4)
        ratio = (w_ops + 0 > 0 && n_ops + 0 > 0) ? sprintf("%.2f", w_ops / n_ops) : "n/a"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", trim($2), trim($3), w_ops, n_ops, ratio, w_p50, trim($5), w_p99, trim($6)
      }'
  done
  echo
  echo "native cluster load before: ${load_before#*load average: }; after: ${load_after#*load average: }"
fi

[ "$failed" = 0 ] || { log "some runs had errors"; exit 1; }
ok=1
