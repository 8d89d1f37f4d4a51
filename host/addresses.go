package host

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/trust"
)

// Member addresses. Raft's configuration knows each member's Raft (SSH)
// address; clients need its HTTP API address, operators its management
// address. Both are part of the replicated state: each node proposes its own
// (a kindAddresses entry, through the leader: the "addresses" RPC, which a
// member may call about itself only) whenever the replicated entry differs
// from its configuration — on start, after a restore brought another
// cluster's entries, after a restart with other flags. Every node then
// knows every member's API address, down or not: /v1/cluster and `raftkv
// members` show them, and a not_leader answer names the leader's URL.
//
// kindAddresses is far from the other kinds so that kinds added next to
// them elsewhere cannot collide with it.
const kindAddresses kind = 32

// memberAddresses is a member's client-facing addresses.
type memberAddresses struct {
	NodeID string `msgpack:"id"`
	API    string `msgpack:"api,omitempty"`  // the HTTP API's URL, "http://127.0.0.1:8080"
	Mgmt   string `msgpack:"mgmt,omitempty"` // the management listener, "127.0.0.1:6000"
}

func (m memberAddresses) validate() error {
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

// addresses returns the replicated addresses by node ID (do not modify).
func (f *fsm) addresses() map[string]memberAddresses {
	if m := f.addrs.Load(); m != nil {
		return *m
	}
	return nil
}

// setAddresses applies a kindAddresses entry.
func (f *fsm) setAddresses(e *envelope) *applyResult {
	var m memberAddresses
	if err := abi.Unmarshal(e.Payload, &m); err != nil {
		return &applyResult{err: fmt.Errorf("%w: addresses entry: %w", ErrInvalid, err)}
	}
	if err := m.validate(); err != nil {
		return &applyResult{err: err}
	}
	old := f.addresses()
	next := make(map[string]memberAddresses, len(old)+1)
	for id, a := range old {
		next[id] = a
	}
	next[m.NodeID] = m
	f.addrs.Store(&next)
	return &applyResult{}
}

// sortedAddresses is the table for a snapshot.
func (f *fsm) sortedAddresses() []memberAddresses {
	var out []memberAddresses
	for _, a := range f.addresses() {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// restoreAddresses installs a snapshot's table.
func (f *fsm) restoreAddresses(list []memberAddresses) {
	next := make(map[string]memberAddresses, len(list))
	for _, a := range list {
		if a.validate() == nil {
			next[a.NodeID] = a
		}
	}
	f.addrs.Store(&next)
}

// ownAddresses is what this node publishes.
func (n *Node) ownAddresses() memberAddresses {
	return memberAddresses{NodeID: n.cfg.NodeID, API: n.cfg.APIAddress, Mgmt: n.cfg.MgmtAddress}
}

// publishAddresses proposes this node's addresses whenever the replicated
// ones differ, until shutdown. Runs in its own goroutine.
func (n *Node) publishAddresses() {
	own := n.ownAddresses()
	if own.API == "" && own.Mgmt == "" {
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.shutdown:
			return
		case <-t.C:
		}
		if n.fsm.addresses()[own.NodeID] == own || n.fsm.stopped() != nil {
			continue
		}
		if id, _ := n.Leader(); id == "" || !n.isMember(own.NodeID) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.setAddresses(ctx, own); err != nil {
			n.log.Debug("publishing this node's addresses", "err", err)
		}
		cancel()
	}
}

// isMember reports whether id is in the Raft configuration.
func (n *Node) isMember(id string) bool {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// setAddresses replicates a member's addresses (forwarded to the leader).
func (n *Node) setAddresses(ctx context.Context, a memberAddresses) error {
	if !n.isLeader() {
		_, err := n.forward(ctx, &addressesRPC{Addresses: a})
		return err
	}
	return n.setAddressesLocal(ctx, a)
}

func (n *Node) setAddressesLocal(ctx context.Context, a memberAddresses) error {
	data, err := abi.Marshal(&a)
	if err != nil {
		return err
	}
	if err := a.validate(); err != nil {
		return err
	}
	if !n.isMember(a.NodeID) {
		return fmt.Errorf("%w: %s is not a member", ErrNotFound, a.NodeID)
	}
	r, err := n.propose(ctx, envelope{Kind: kindAddresses, Payload: data})
	if err != nil {
		return err
	}
	return r.err
}

// LeaderAPIAddress returns the leader's HTTP API URL, if it is known.
func (n *Node) LeaderAPIAddress() string {
	id, _ := n.Leader()
	if id == "" {
		return ""
	}
	return n.fsm.addresses()[id].API
}
