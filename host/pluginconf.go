package host

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/host/plugin"
)

// A plugin's configuration is replicated: its module and its limits
// (plugin.Limits: fuel, memory cap, quotas, whether it is trusted) travel in
// the log, in deploy and set-limits entries, and in snapshots and backups. Every node loads the
// module with the same limits, so every node runs out of fuel or memory at
// the same instruction of the same entry. The leader resolves a deploy's
// limits (the request's, over the plugin's current ones or the defaults)
// before proposing it, so an entry states them in full and applying it
// depends on nothing else.

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

// limitsErr maps a refusal of limits to ErrInvalid with the reason.
func limitsErr(err error) error {
	if errors.Is(err, plugin.ErrLimits) || errors.Is(err, plugin.ErrNodeLimit) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

// resolveLimits returns the limits of a deploy of name with options o: its
// patch over the plugin's current limits, or over the defaults, trusted as
// o says. They are checked against the ranges and this node's memory cap
// (ErrInvalid).
func (n *Node) resolveLimits(name string, o DeployOptions) (plugin.Limits, error) {
	base := plugin.DefaultLimits()
	if old := n.fsm.Plugin(name); old != nil {
		base = old.Module().Limits
	}
	lim := o.Limits.Over(base)
	lim.Trusted = o.Trusted
	return n.checkLimits(lim)
}

func (n *Node) checkLimits(l plugin.Limits) (plugin.Limits, error) {
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if max := n.rt.Config().MemoryLimitPages; l.MemoryPages > max {
		return l, fmt.Errorf("%w: memory_pages %d exceeds this node's cap of %d pages (serve --plugin-memory-pages); every node must allow it", ErrInvalid, l.MemoryPages, max)
	}
	return l, nil
}
