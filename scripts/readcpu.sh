#!/usr/bin/env bash
# readcpu.sh — server CPU per read (BENCHMARKS.md, "Server CPU per stale GET").
#
# Starts one fresh node of bin/raftkv on 127.0.8.31 (with its pprof on :21083),
# runs `raftkv-bench --op get --consistency C --clients 64 --duration D
# --preload 10000`, and prints the node's own CPU time (user + system, from
# /proc/PID/stat) per read served, less the CPU of a run that only preloads.
# With PROFILE set, also saves a CPU profile of the measured run there.
#
#   scripts/readcpu.sh [stale|leader|linearizable] [10s]
#   PROFILE=/tmp/read.prof scripts/readcpu.sh stale 10s
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/bin/raftkv}
benchbin=${BENCHBIN:-$root/bin/raftkv-bench}
cons=${1:-stale}
dur=${2:-10s}
ip=${READCPU_IP:-127.0.8.31}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-readcpu.XXXXXX")
"$bin" serve --node-id c1 --data-dir "$tmp/n1" --bootstrap --http-addr "$ip:21080" --raft-addr "$ip:21081" \
  --mgmt-addr "$ip:21082" --pprof-addr "$ip:21083" >"$tmp/n1.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://$ip:21080/readyz" >/dev/null && break
  sleep 0.2
done
addr=http://$ip:21080
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
# warm up: the plugin's query instances, the connections
"$benchbin" --addr "$addr" --op get --consistency "$cons" --clients 64 --duration 3s --preload 10000 --quiet >/dev/null
p0=$(ticks)
"$benchbin" --addr "$addr" --op get --consistency "$cons" --clients 64 --count 1 --preload 10000 --quiet >/dev/null
p1=$(ticks)
t0=$(ticks)
prof=
if [ -n "${PROFILE:-}" ]; then
  curl -s -o "$PROFILE" "http://$ip:21083/debug/pprof/profile?seconds=${dur%s}" &
  prof=$!
fi
out=$("$benchbin" --addr "$addr" --op get --consistency "$cons" --clients 64 --duration "$dur" --preload 10000 --json --quiet)
t1=$(ticks)
[ -z "$prof" ] || wait "$prof"
reads=$(sed -n 's/.*"ok": *\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
hz=$(getconf CLK_TCK)
awk -v c="$cons" -v n="$reads" -v a="$t0" -v b="$t1" -v p0="$p0" -v p1="$p1" -v hz="$hz" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  printf "consistency=%s reads=%d node_cpu_s=%.2f preload_cpu_s=%.2f us_per_read=%.1f load=%s\n", c, n, (b-a)/hz, (p1-p0)/hz, ((b-a)-(p1-p0))/hz/n*1e6, load }'
