package host

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/host/peerrpc"
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

// The options of a deploy cross the forwarding RPC (host/peerrpc), so
// their types are peerrpc's.
type (
	// LimitsPatch changes some of a plugin's limits: a nil field keeps the
	// plugin's current value (the default, for a new plugin).
	LimitsPatch = peerrpc.LimitsPatch
	// DeployOptions are a deploy's limits and preconditions. The zero value
	// deploys or upgrades unconditionally with the plugin's current limits
	// (the defaults for a new plugin).
	DeployOptions = peerrpc.DeployOptions
)

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
