package peerrpc

import "github.com/raftkv/raftkv/host/plugin"

// The types the bodies carry that are also package host's API (host
// re-exports each under the same name).

// Consistency is the guarantee a read asks for.
type Consistency uint8

const (
	// Leader (the default): the leader answers after confirming with a quorum
	// that it still leads. No stale leader answers after a partition or pause.
	Leader Consistency = iota
	// Stale: any node answers from its local state, without coordination.
	Stale
	// Linearizable: read index. The leader records its commit index, confirms
	// leadership with a quorum and waits until it has applied that index.
	Linearizable
)

func (c Consistency) String() string {
	return [...]string{"leader", "stale", "linearizable"}[c]
}

// JoinRequest asks the cluster to add a node.
type JoinRequest struct {
	NodeID  string `json:"id" msgpack:"id"`
	Address string `json:"address" msgpack:"address"` // the node's Raft (SSH) address
	// PublicKey, if set, is the node's key ("ssh-ed25519 AAAA…", a trust line
	// is accepted too). It is added to the replicated trust list, so no file
	// has to be edited on any member. Without it the key must already be
	// trusted (authorized_keys or a trust entry).
	PublicKey string `json:"public_key,omitempty" msgpack:"public_key,omitempty"`
	// NonVoter adds the node as a non-voting member that receives the log.
	NonVoter bool `json:"non_voter,omitempty" msgpack:"non_voter,omitempty"`
}

// LimitsPatch changes some of a plugin's limits: a nil field keeps the
// plugin's current value (the default, for a new plugin).
type LimitsPatch struct {
	ApplyFuel         *uint64 `json:"apply_fuel,omitempty" msgpack:"apply_fuel,omitempty"`
	QueryFuel         *uint64 `json:"query_fuel,omitempty" msgpack:"query_fuel,omitempty"`
	LoadFuel          *uint64 `json:"load_fuel,omitempty" msgpack:"load_fuel,omitempty"`
	MemoryPages       *uint32 `json:"memory_pages,omitempty" msgpack:"memory_pages,omitempty"`
	MaxWriteBytes     *uint64 `json:"max_write_bytes,omitempty" msgpack:"max_write_bytes,omitempty"`
	MaxNamespaceKeys  *uint64 `json:"max_namespace_keys,omitempty" msgpack:"max_namespace_keys,omitempty"`
	MaxNamespaceBytes *uint64 `json:"max_namespace_bytes,omitempty" msgpack:"max_namespace_bytes,omitempty"`
	MaxLogBytes       *uint64 `json:"max_log_bytes,omitempty" msgpack:"max_log_bytes,omitempty"`
}

// Over returns l with the patch's fields set.
func (p LimitsPatch) Over(l plugin.Limits) plugin.Limits {
	set := func(dst *uint64, v *uint64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&l.ApplyFuel, p.ApplyFuel)
	set(&l.QueryFuel, p.QueryFuel)
	set(&l.LoadFuel, p.LoadFuel)
	if p.MemoryPages != nil {
		l.MemoryPages = *p.MemoryPages
	}
	set(&l.MaxWriteBytes, p.MaxWriteBytes)
	set(&l.MaxNamespaceKeys, p.MaxNamespaceKeys)
	set(&l.MaxNamespaceBytes, p.MaxNamespaceBytes)
	set(&l.MaxLogBytes, p.MaxLogBytes)
	return l
}

// DeployOptions are a deploy's limits and preconditions. The zero value
// deploys or upgrades unconditionally with the plugin's current limits
// (the defaults for a new plugin).
type DeployOptions struct {
	// Limits changes the limits the module runs with.
	Limits LimitsPatch `msgpack:"limits"`
	// Create deploys only if no plugin of that name is active (else
	// ErrPrecondition): a new plugin never silently replaces another.
	Create bool `msgpack:"create,omitempty"`
	// IfHash upgrades only if the active module's hash is IfHash ("*": any
	// active module), else ErrPrecondition: the HTTP API's If-Match.
	IfHash string `msgpack:"if_hash,omitempty"`
	// Force upgrades even when the new module's raftkv_info name differs
	// from the active module's (else ErrConflict: an unrelated module would
	// take over the plugin's state).
	Force bool `msgpack:"force,omitempty"`
	// Trusted deploys the module trusted (plugin.Limits.Trusted): the
	// operator vouches for it and it runs without fuel, so a loop in it
	// runs until the wall-clock limit and stops every node (a fail-stop
	// that only a quarantine recovers). It is set by each deploy and not
	// kept from the module the plugin ran before: trust is in a module, not
	// in a name.
	Trusted bool `msgpack:"trusted,omitempty"`
}
