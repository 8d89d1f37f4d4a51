// Command etcd-vs-raftkv runs the same workloads against a 3-node raftkv
// cluster and a 3-node etcd cluster on this machine, alternating the two
// systems workload by workload in one run, and prints the raftkv/etcd
// throughput ratios as a markdown table (the last part of `make bench`).
//
// Why a separate module: the product must not depend on etcd. This module
// has its own go.mod, so `go build ./...`, `go vet ./...`, `go test ./...`
// and `go mod tidy` of the repository's root module never see it.
//
// What runs where. Both clusters run as real processes on loopback, side by
// side for the whole run (127.0.8.1-3 for raftkv, 127.0.8.11-13 for etcd, so
// nothing collides with other local clusters):
//
//   - raftkv: three `bin/raftkv serve` processes (n1 bootstraps, n2 and n3
//     join), loaded by `raftkv-bench --target leader --json` (cmd/raftkv-bench),
//     raftkv's own load generator and HTTP client (what scripts/bench.sh uses);
//   - etcd: three processes of this same binary started with the hidden
//     `etcd-node` command, each an embedded etcd server
//     (go.etcd.io/etcd/server/v3/embed), loaded in this process through the
//     official client (go.etcd.io/etcd/client/v3) with the same shape of
//     load: --clients goroutines, one request in flight each, every request
//     to the leader's endpoint, for the same duration.
//
// Workloads: 16 B keys and 100 B values; writes to new keys with 1 and 64
// clients; linearizable and stale (etcd: serializable) reads with 64
// clients over preloaded keys. The ratio is raftkv ops/s over etcd ops/s:
// above 1, raftkv served more.
package main
