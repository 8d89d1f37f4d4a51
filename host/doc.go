// Package host is a raftkv node: hashicorp/raft over the SSH transport,
// the batching state machine that runs WebAssembly plugins, and the
// operations a server offers on them (host.New(cfg) returns a *Node;
// host/httpapi serves it over HTTP, cmd/raftkv runs it). DESIGN.md explains
// how the parts work together; this is where each lives in the package.
//
// Node lifecycle and configuration:
//   - config.go: Config, its defaults and Validate (hashicorp/raft's
//     ValidateConfig, the log store's and the transport's own checks).
//   - node.go: New, Close, leadership watching, the read and write paths
//     (Apply, Query, verifyLeader, waitApplied).
//   - future.go: waitFuture, the one way to wait on a Raft future with a
//     deadline or a shutdown.
//   - readiness.go: /readyz's notion of caught up; errors.go: the errors a
//     caller tells apart; hclog.go: Raft's logs into slog.
//   - seam.go: the benchmark and test hooks of internal/hostseam.
//
// The state machine is internal/fsm: the batching FSM (entries → plugin
// calls → results, fail-stop), the log entry codec, the snapshot and backup
// format, the idempotency table. Here, what the node does with it:
//   - statemachine.go: what this package re-exports of it (PluginInfo,
//     InspectBackup, the idempotency-key bounds, …).
//   - stats.go: the node's Stats, Backup and Restore (a backup verified,
//     its modules loaded, its header rewritten for this cluster).
//   - recover.go, quarantine.go: quorum-loss recovery, and proposing a
//     quarantine (the way out of a fail-stop without wiping anything);
//     digestcheck.go: divergence detection between nodes.
//
// Plugins: plugins.go (deploy, remove, the plugin list), pluginconf.go
// (replicated plugin configuration: the limits a deploy resolves).
//
// Forwarding, from a follower to the leader over the SSH "rpc" channel:
// the protocol (methods and who may call each, the bodies and their codecs,
// the error codes, the batching of forwarded writes) is package
// host/peerrpc; forward.go is the node's half (the call to the leader,
// serving and dispatching forwarded calls), and errors.go, node.go,
// membership.go and pluginconf.go re-export the types and errors of
// peerrpc that are this package's API (Consistency, JoinRequest,
// DeployOptions, LimitsPatch, ErrNotLeader, …).
//
// Membership and trust: membership.go (Join, Remove, Trust, hand-over),
// joinsafety.go (what a membership change must satisfy), addresses.go
// (members' replicated HTTP addresses), peerauth.go (who may send Raft
// RPCs), vouch.go (a voter that missed joins learns the current voters),
// truststore.go (the node's reads and writes of trust.json). The trust list
// itself (keys bound to node IDs, its two sources, revocation, the
// trust.json format and the trust floor) is package host/trust.
//
// Observability: metrics.go (Prometheus), status.go (every member's status).
//
// Splitting the rest of this package by concern (cluster, …, as issue 12
// sketches) is still to do; the trust list (host/trust), the state machine
// (internal/fsm) and the forwarding protocol (host/peerrpc) are done.
package host
