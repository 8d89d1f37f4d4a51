// Package fsm is raftkv's replicated state machine: the raft.BatchingFSM that
// turns committed log entries into plugin calls and results, the codec of
// those entries, and the snapshot format, which is also the backup file's.
// Raft decides the order of the entries; this package decides what they
// mean, and it must decide the same on every node.
//
// # Who calls what
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore on its FSM goroutine
// (the snapshot's Persist runs concurrently with later applies). That
// goroutine owns the write side: the plugins' apply instances, the state's
// Store.Update, the idempotency table, the entries held after a fail-stop.
//
// Package host builds the FSM (New, from a Config) and is its only other
// caller. It proposes entries it encodes with Envelope.Encode and reads each
// entry's *Result from Raft's future. From any goroutine it reads: Query
// and Validate run on a plugin's query pool against a consistent view of
// the state; Applied, AppliedSignal, Stopped, Failure and FailSignals say
// how far the FSM got; Plugin, PluginInfos, KeptStates, View, Addresses and
// Digests what it holds. Close releases the plugins once Raft has shut
// down. Nothing here knows of the Node, the transport's connections or the
// HTTP API.
//
// # Log entries
//
// Every entry is an Envelope: MsgPack [kind, time, plugin, payload] or, for
// a command with an idempotency key, [kind, time, plugin, payload, key].
// Time is the leader's clock when it proposed the entry. A command's
// payload is the plugin's own bytes; the host kinds carry MsgPack payloads
// (DeploySpec, SetLimitsSpec, RemovePlugin, QuarantineSpec, TrustChange,
// MemberAddresses; a digest check carries none). The envelope's codec is
// written by hand (envelope.go): the leader encodes it once per write and
// every node decodes it once per entry. An entry that does not decode is a
// result (ErrInvalid), never a crash.
//
// # Batching
//
// ApplyBatch decodes the batch's envelopes first. If the batch deploys,
// removes, quarantines or changes the limits of a plugin, the new modules
// are loaded and compiled before the store lock is taken (loadDeploys):
// compiling takes seconds, readers must not wait for it, and loading
// depends on the module's bytes alone, so doing it early changes no result.
// The batch is then applied inside one state.Store.Update. Consecutive
// commands for the same plugin form a run, and a run is one guest call
// (applyCommands); host entries are applied one by one. The time given to
// plugins is the leader's stamp made monotonic: the same on every node.
//
// Readers never block the FSM: they read immutable views of the state. A
// query takes the plugin and the state as of the same point in the log
// (pluginView): a generation counter is odd while a batch that changes
// plugins is applied, so during an upgrade old code never reads migrated
// state, nor new code the state before its migration.
//
// # Determinism and fail-stop
//
// A result must be the same on every node. A plugin's error, a trap, a
// refused deploy, an unknown plugin are results. A plugin call that reaches
// the wall-clock limit, or limits that this node's configuration refuses,
// are not: another node may get past them. Then the FSM stops applying the
// log (stopsApplying, failStop, stopAt): the applied index stays at the
// entry before, the entries Raft hands over after it are kept but not
// applied, and Snapshot and Restore refuse (a snapshot labelled past the
// failed entry would skip it forever). quarantine.go describes the way out
// without wiping anything: a quarantine entry for the plugin the node
// stopped at.
//
// Two more tables are part of the replicated state. The results of
// recent commands that carried an idempotency key live in the namespace
// SessionsNamespace, written in the same update as the command's own writes
// (sessions.go). The members' API and management addresses are applied from
// their entries (addresses.go). A digest-check entry changes nothing: every
// node records the digests of its state at that index, for package host to
// compare between nodes (digest.go).
//
// # Snapshots, backups and the trust floor
//
// A snapshot (snapshot.go) is "RKVSNAP1", a length-prefixed MsgPack
// SnapshotHeader with its sha256 (the active modules with their limits and
// quarantine flags, the trust list and revoked IDs, the members' addresses,
// the applied index, the FSM's clock), then host/state's stream of every
// namespace, with its own checksum. A backup is the same file: InspectBackup
// and ReadBackupPlugin read one offline, VerifySnapshot checks one before a
// restore (backup.go). Restore loads and verifies everything before it
// replaces anything.
//
// The trust list, which says whose SSH keys the transport accepts, is
// replicated: TrustChange entries and snapshots set it on the node's
// trust.Trust (host/trust). A restart restores the node's latest snapshot, which may
// be older than the trust list the node had applied before it stopped
// (host's trust.json, given as Config.TrustFloor). Restore then keeps the
// newer list: the node needs it to hear from a leader that joined after
// the snapshot, and the log it replays applies the changes in between
// again, which binds or drops the same keys.
//
// # Layering
//
// This package imports host's sub-packages (plugin, state, trust) and
// abi, never package host itself, nor the guest SDK plugins/sdk
// (TestImports in host/transport/imports_test.go). The sentinel errors are
// defined here and re-exported by package host under the same names.
package fsm
