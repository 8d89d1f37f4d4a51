package fsm

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// Recovering from a fail-stop without wiping anything.
//
// A plugin call that passes the wall-clock limit (a host bug: metered
// plugins run out of fuel long before) stops the node applying the log at
// that entry: a time limit is not deterministic, so it cannot become a
// result. When it happens on every voter at the same entry, no node can
// apply anything after it, and a restart replays it and stops again.
//
// The way out is a host-level entry that quarantines the plugin. A stopped
// leader keeps its leadership (see host's Node.handOverFailed), so the
// cluster still commits entries, and a stopped FSM keeps the entries Raft
// hands it after the failed one instead of applying them. When a quarantine
// entry for the plugin whose entry failed arrives, the FSM applies that
// entry as refused (ErrQuarantined: nothing it wrote is kept), marks the
// plugin quarantined, and applies the entries it kept: commands for the
// quarantined plugin are refused, everything else is applied as usual. The
// node is applying again; the plugin stays quarantined (its commands and
// queries refused) until a module is deployed for it again, which is how a
// fixed plugin (or the same one with smaller limits) goes back into service.
// Every stopped node does the same from the same log: a node restarted
// before it recovered replays the entry, stops, and recovers at the
// quarantine entry the same way. After recovering, a node takes a snapshot,
// so that later restarts do not replay the failed entry at all.
//
// Why this rather than a node option that skips an index: the quarantine
// is in the log, so every node (and every node that joins later) applies
// the same decision at the same index, and the operator gives it once, to
// any node, without restarting anything. The cost is one rule an operator
// must know: a node that stopped while the others went on (a minority) is
// not recovered by a quarantine (the others applied the entry): restart it
// once the cause is fixed, or replace it.

// QuarantineSpec is the payload of a quarantine entry.
type QuarantineSpec struct {
	Reason string `msgpack:"reason,omitempty"`
}

// holdLimit bounds the entries a stopped FSM keeps: past it, they are
// dropped, and only a restart (which replays them from the log) recovers.
const holdLimit = 64 << 20

// hold keeps copies of entries handed to a stopped FSM.
func (f *FSM) hold(logs []*raft.Log) {
	if f.heldOverflow {
		return
	}
	for _, l := range logs {
		f.heldBytes += len(l.Data) + 64
		if f.heldBytes > holdLimit {
			f.heldOverflow, f.held, f.heldBytes = true, nil, 0
			f.log.Error("fail-stopped: too many entries arrived since the failure to keep them; a quarantine now needs a restart of this node to take effect", "limit_bytes", holdLimit)
			return
		}
		c := *l
		c.Data = append([]byte(nil), l.Data...)
		c.Extensions = nil
		f.held = append(f.held, &c)
	}
}

// applyStopped takes a batch handed to a stopped FSM: it keeps it, and
// recovers if it holds a quarantine entry for the plugin the node stopped
// at. Otherwise every entry is answered with ErrStopped.
func (f *FSM) applyStopped(logs []*raft.Log) []any {
	f.hold(logs)
	if f.failedPlugin != "" && !f.heldOverflow && len(f.held) > 0 {
		for _, l := range logs {
			if l.Type != raft.LogCommand {
				continue
			}
			if e, err := decodeEnvelope(l.Data); err == nil && e.Kind == KindQuarantine && e.Plugin == f.failedPlugin {
				return f.recoverBatch(len(logs))
			}
		}
	}
	out := make([]any, len(logs))
	err := f.Stopped()
	for i := range out {
		out[i] = &Result{Err: err}
	}
	return out
}

// recoverBatch applies the held entries: the failed one refused, the rest
// with the plugin quarantined. It returns the results of the last n (the
// batch being applied; the others were answered with ErrStopped).
func (f *FSM) recoverBatch(n int) []any {
	held, name := f.held, f.failedPlugin
	f.held, f.heldBytes, f.failedPlugin = nil, 0, ""
	failed := held[0]
	reason := *f.failed.Load()
	_, recovered := f.failSignals()
	f.clearFailure()
	f.pgen.Add(1)
	f.store.Update(func() {
		f.markQuarantined(name)
		f.applied.Store(failed.Index)
	})
	f.pgen.Add(1)
	f.notifyApplied()
	f.log.Warn("recovered from the fail-stop: the failed entry is refused and the plugin quarantined until a module is deployed for it again",
		"plugin", name, "index", failed.Index, "failure", reason, "entries", len(held))
	out := make([]any, 0, len(held))
	out = append(out, &Result{Err: fmt.Errorf("%w: %q: entry %d stopped the node and was refused by a quarantine", ErrQuarantined, name, failed.Index)})
	if len(held) > 1 {
		f.recovering = name
		out = append(out, f.ApplyBatch(held[1:])...)
		f.recovering = ""
	}
	close(recovered) // even if the entries applied since stopped it again: a new episode
	return out[len(out)-n:]
}

// clearFailure ends a fail-stop: the FSM applies again.
func (f *FSM) clearFailure() {
	f.failMu.Lock()
	defer f.failMu.Unlock()
	f.failed.Store(nil)
	f.failedCh = make(chan struct{})
}

// FailSignals returns a channel closed at the next fail-stop (or already
// closed, if the FSM is stopped) and one closed when it recovers from the
// current fail-stop (a quarantine entry).
func (f *FSM) FailSignals() (failed, recovered <-chan struct{}) {
	return f.failSignals()
}

// failSignals is FailSignals with recovered closable (recoverBatch closes
// it).
func (f *FSM) failSignals() (failed <-chan struct{}, recovered chan struct{}) {
	f.failMu.Lock()
	defer f.failMu.Unlock()
	return f.failedCh, f.recoveredCh
}

// markQuarantined publishes the named plugin quarantined (if it is
// active). Under the store lock, with pgen odd.
func (f *FSM) markQuarantined(name string) bool {
	p := f.Plugin(name)
	if p == nil {
		return false
	}
	if !p.quarantined {
		q := *p // the same engine and module: closed once, with the copy
		q.quarantined = true
		f.setPlugin(name, &q)
	}
	return true
}

// quarantine applies a quarantine entry on a node that is not stopped.
func (f *FSM) quarantine(e *Envelope) *Result {
	if !f.markQuarantined(e.Plugin) {
		if e.Plugin == f.recovering {
			return &Result{} // it ended the fail-stop its plugin's deploy caused
		}
		return &Result{Err: fmt.Errorf("%w: plugin %q", ErrNotFound, e.Plugin)}
	}
	f.log.Warn("plugin quarantined: its commands and queries are refused until a module is deployed for it again", "plugin", e.Plugin)
	return &Result{}
}
