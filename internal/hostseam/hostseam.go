// Package hostseam reaches into package host for benchmarks and tests without
// widening host's API: host fills these functions in when it is initialised.
// It imports host's subpackages but not host itself, so host can import it.
package hostseam

import (
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
)

// SetNativePlugins makes a node started with cfg (a *host.Config) run the Go
// code natives[hash] in place of any module whose sha256 (hex, as
// plugin.HashOf gives it) is hash, when the module is activated by its deploy
// entry or a snapshot. Everything else is as for any module: it is deployed
// through the log, validated, compiled and described from its wasm, and
// carried in snapshots, so the log, the state and the results are a wasm
// node's; only the engine differs (a trap's message text aside). It exists to
// measure what WebAssembly costs (raftkv serve --native-kv) and for
// differential tests. The Go code runs unsandboxed, with no memory cap or call
// time limit, and its queries run concurrently with each other and with
// applies: map only code shipped in the binary, with no mutable fields
// (sdknative.Code(kvplugin.KV{}) for kvwasm.Module). host.Config.Validate
// refuses a key that is not a module hash and a nil Code.
var SetNativePlugins func(cfg any, natives map[string]plugin.Code)

// SetNetwork makes a node started with cfg (a *host.Config) listen and dial
// through network instead of TCP (transport.Config.Network): RaftAddr and
// AdvertiseAddr are then addresses of that network. Everything above the
// network — the SSH handshake, the key checks, raft's authentication — is
// unchanged. It exists for the in-process test cluster (internal/cluster with
// an in-memory network, internal/memnet); nil means TCP.
var SetNetwork func(cfg any, network transport.Network)

// SetRefuseAppends makes a node started with cfg (a *host.Config) answer
// every AppendEntries request that reaches it with an error, before Raft or
// the readiness check sees it, while refuse returns true; heartbeats, which
// Raft answers on the transport's fast path, still arrive. It is a leader
// that cannot replicate to the node but is still heard, for the readiness
// tests.
var SetRefuseAppends func(cfg any, refuse func() bool)
