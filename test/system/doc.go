// Package system holds raftkv's system tests: each builds the raftkv binary
// (once per test run, stamped by scripts/ldflags.sh as 'make build' does)
// and runs it as real processes, one per node, on distinct loopback
// addresses (127.0.0.x and a few 127.0.8.x, 127.0.22.x), then checks what
// an operator or a client sees: HTTP answers, the CLI's output and exit
// status (the CLI is the built binary too, run as a command), process
// exits and logs. A test that needs the internals of package main belongs
// in cmd/raftkv instead; cmd/raftkv's own tests run the CLI in-process.
//
// Every test here calls buildBinary, which skips it under go test -short
// (make test, make test-short); make test-system runs them. They share the compiled-plugin
// cache with cmd/raftkv's tests ($RAFTKV_TEST_WASM_CACHE, else a directory
// under the system's temporary directory). The fault suite of longer runs
// with partitions and linearizability checks is test/chaos.
//
// The files:
//
//   - helpers_test.go: HTTP helpers, poll, free addresses, the API's
//     answers as the tests decode them, and cli/mustCLI, which run the
//     built binary's client subcommands.
//   - e2e_test.go: buildBinary and the process harness (proc, startCluster);
//     TestE2E, one 3-node cluster through the seed's MsgPack endpoints, the
//     v1 API and the CLI (failover, restart, a paused leader's reads, join
//     and remove, graceful shutdown, backup restored into a second cluster);
//     TestClusterScripts, examples/cluster's start.sh and stop.sh.
//   - attack_e2e_test.go: TestPeerAttacksE2E, the attacks of an adversarial
//     peer (SECURITY.md) against processes of the binary.
//   - addresses_test.go: TestMemberAddresses, the replicated HTTP and
//     management addresses of every member.
//   - client_failover_test.go: TestClientFailover, the client package and
//     the CLI's --endpoints across the leader's death.
//   - contain_e2e_test.go: a hostile plugin contained (fuel, call timeout,
//     quarantine).
//   - diskfull_test.go: a node's disk full and freed (needs root for a
//     tmpfs).
//   - diverge_e2e_test.go: TestE2EDivergenceDetected, state divergence
//     reported on /healthz, in the metrics, the CLI and the log.
//   - failfast_test.go: serve exits at once, and says why, on a data
//     directory in use, another --node-id, a --join at a Raft port, a former
//     member's data directory without its log.
//   - logstore_test.go: TestServeDamagedLog, a damaged Raft log.
//   - readiness_test.go: TestServeReadinessRestart, readiness of a
//     restarted node.
//   - rejoin_e2e_test.go: TestRestartedNonVoterPromoted.
//   - removed_test.go: TestServeRemovedNodeRestarted.
//   - removeleader_test.go: TestRemoveLeaderThroughFollower.
//   - shutdown_test.go: SIGTERM with stopped peers or a failing leader.
//   - version_test.go: TestVersionStamped, the stamped version everywhere an
//     operator looks.
//
// The Docker tests (make test-docker) are in cmd/raftkv/docker*_test.go.
// Everything else is in _test.go files: the package is not a library.
package system
