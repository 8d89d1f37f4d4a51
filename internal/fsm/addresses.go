package fsm

import (
	"fmt"
	"net"
	"net/url"
	"sort"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/trust"
)

// Member addresses. Raft's configuration knows each member's Raft (SSH)
// address; clients need its HTTP API address, operators its management
// address. Both are part of the replicated state: each node proposes its own
// (a KindAddresses entry, through the leader: the "addresses" RPC, which a
// member may call about itself only) whenever the replicated entry differs
// from its configuration — on start, after a restore brought another
// cluster's entries, after a restart with other flags. Every node then
// knows every member's API address, down or not: /v1/cluster and `raftkv
// members` show them, and a not_leader answer names the leader's URL.
//
// KindAddresses is far from the other kinds so that kinds added next to
// them elsewhere cannot collide with it.
const KindAddresses Kind = 32

// MemberAddresses is a member's client-facing addresses.
type MemberAddresses struct {
	NodeID string `msgpack:"id"`
	API    string `msgpack:"api,omitempty"`  // the HTTP API's URL, "http://127.0.0.1:8080"
	Mgmt   string `msgpack:"mgmt,omitempty"` // the management listener, "127.0.0.1:6000"
}

// Validate refuses an invalid node ID, an API address that is not an
// http(s)://host:port URL, a management address that is not host:port, and
// addresses over 512 bytes (ErrInvalid).
func (m MemberAddresses) Validate() error {
	if err := trust.ValidateNodeID(m.NodeID); err != nil {
		return fmt.Errorf("%w: addresses: %w", ErrInvalid, err)
	}
	if m.API != "" {
		u, err := url.Parse(m.API)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("%w: addresses: API address %q is not an http(s)://host:port URL", ErrInvalid, m.API)
		}
	}
	if m.Mgmt != "" {
		if _, _, err := net.SplitHostPort(m.Mgmt); err != nil {
			return fmt.Errorf("%w: addresses: management address %q: %w", ErrInvalid, m.Mgmt, err)
		}
	}
	if len(m.API) > 512 || len(m.Mgmt) > 512 {
		return fmt.Errorf("%w: addresses: too long", ErrInvalid)
	}
	return nil
}

// Addresses returns the replicated addresses by node ID (do not modify).
func (f *FSM) Addresses() map[string]MemberAddresses {
	if m := f.addrs.Load(); m != nil {
		return *m
	}
	return nil
}

// setAddresses applies a kindAddresses entry.
func (f *FSM) setAddresses(e *Envelope) *Result {
	var m MemberAddresses
	if err := abi.Unmarshal(e.Payload, &m); err != nil {
		return &Result{Err: fmt.Errorf("%w: addresses entry: %w", ErrInvalid, err)}
	}
	if err := m.Validate(); err != nil {
		return &Result{Err: err}
	}
	old := f.Addresses()
	next := make(map[string]MemberAddresses, len(old)+1)
	for id, a := range old {
		next[id] = a
	}
	next[m.NodeID] = m
	f.addrs.Store(&next)
	return &Result{}
}

// sortedAddresses is the table for a snapshot.
func (f *FSM) sortedAddresses() []MemberAddresses {
	var out []MemberAddresses
	for _, a := range f.Addresses() {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// restoreAddresses installs a snapshot's table.
func (f *FSM) restoreAddresses(list []MemberAddresses) {
	next := make(map[string]MemberAddresses, len(list))
	for _, a := range list {
		if a.Validate() == nil {
			next[a.NodeID] = a
		}
	}
	f.addrs.Store(&next)
}
