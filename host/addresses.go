package host

import (
	"context"
	"fmt"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/fsm"
)

// ownAddresses is what this node publishes.
func (n *Node) ownAddresses() fsm.MemberAddresses {
	return fsm.MemberAddresses{NodeID: n.cfg.NodeID, API: n.cfg.APIAddress, Mgmt: n.cfg.MgmtAddress}
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
		if n.fsm.Addresses()[own.NodeID] == own || n.fsm.Stopped() != nil {
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
func (n *Node) setAddresses(ctx context.Context, a fsm.MemberAddresses) error {
	if !n.isLeader() {
		_, err := n.forward(ctx, &peerrpc.AddressesBody{Addresses: a})
		return err
	}
	return n.setAddressesLocal(ctx, a)
}

func (n *Node) setAddressesLocal(ctx context.Context, a fsm.MemberAddresses) error {
	data, err := abi.Marshal(&a)
	if err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return err
	}
	if !n.isMember(a.NodeID) {
		return fmt.Errorf("%w: %s is not a member", ErrNotFound, a.NodeID)
	}
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindAddresses, Payload: data})
	if err != nil {
		return err
	}
	return r.Err
}

// LeaderAPIAddress returns the leader's HTTP API URL, if it is known.
func (n *Node) LeaderAPIAddress() string {
	id, _ := n.Leader()
	if id == "" {
		return ""
	}
	return n.fsm.Addresses()[id].API
}
