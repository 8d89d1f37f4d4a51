// Package chaos is raftkv's process-level fault suite (make chaos): it runs
// clusters of the built binary (bin/raftkv) as real processes on distinct
// 127.0.3.x addresses, drives them with clients that record a history of
// puts and gets, and meanwhile injects the faults a deployment meets: kill -9
// and restart (a leader, a follower, every node at once), SIGSTOP/SIGCONT,
// network partitions (iptables rules on loopback), a full disk (a tmpfs under
// one node's data directory), membership changes (add, remove, replace a
// node) and plugin deploys and upgrades under load.
//
// After every run it checks what the documentation promises: the history is
// linearizable (porcupine, internal/kvmodel.HistoryModel; reads at the
// linearizable and at the default leader level), no acknowledged write is
// lost, every node restarts and becomes ready, and every node's state
// digests are equal. Faults come from a seeded RNG; the seed is printed, and
// RAFTKV_CHAOS_SEED replays the same sequence of faults (timings, and so
// outcomes, still vary with the machine).
//
// The suite is slow and needs root (iptables, mount), so it runs only when
// RAFTKV_CHAOS_TIME is set: `make chaos` (long), and a bounded run in CI.
// Everything is in _test.go files: the package is not a library.
package chaos
