package host

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Recovering from a fail-stop without wiping anything: a quarantine entry
// for the plugin the node stopped at (internal/fsm/quarantine.go explains
// how the state machine applies it). Here: proposing it, and the leadership
// of a stopped leader.

// QuarantinePlugin quarantines a plugin through the log: from that entry
// on, its commands and queries are refused (ErrQuarantined) on every node
// until a module is deployed for it again. Its state is kept. A node that
// stopped applying at an entry of that plugin (fail-stop) refuses that
// entry and applies the log again (see internal/fsm/quarantine.go): the
// recovery of a cluster whose every voter stopped, which still commits
// this entry.
func (n *Node) QuarantinePlugin(ctx context.Context, name, reason string) error {
	if err := ValidPluginName(name); err != nil {
		return err
	}
	if !n.isLeader() {
		_, err := n.forward(ctx, &peerrpc.QuarantineBody{Plugin: name, Reason: reason})
		return err
	}
	return n.quarantineLocal(ctx, name, reason)
}

func (n *Node) quarantineLocal(ctx context.Context, name, reason string) error {
	payload, err := abi.Marshal(&fsm.QuarantineSpec{Reason: reason})
	if err != nil {
		return err
	}
	// Proposed even by a fail-stopped leader: that is what it is for.
	r, err := n.proposeEntry(ctx, fsm.Envelope{Kind: fsm.KindQuarantine, Plugin: name, Payload: payload}, true)
	if err != nil {
		return err
	}
	return r.Err
}

// handOverFailed transfers leadership away from a fail-stopped leader, to
// a voter that is applying the log, and returns when to try again (nil
// when this node does not lead). When every other voter has stopped too
// (or none answers), it keeps leadership: handing it to another stopped
// node would only make that one hand it on, a storm of elections, and a
// leader is what commits the quarantine entry that recovers them all.
func (n *Node) handOverFailed() <-chan time.Time {
	if !n.isLeader() {
		return nil
	}
	if len(n.voters()) < 2 {
		n.log.Error("fail-stopped leader of a single-voter cluster: no one to hand leadership to")
		return nil
	}
	id, addr, ok := n.healthyVoter()
	if !ok {
		if !n.keptLeadership {
			n.keptLeadership = true
			n.log.Error("fail-stopped, and no other voter is applying the log: keeping leadership so that the cluster can commit a quarantine (raftkv plugin quarantine NAME)")
		}
		return time.After(5 * time.Second)
	}
	n.keptLeadership = false
	n.log.Error("fail-stopped: handing leadership over", "to", id)
	if err := n.await(n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))); err != nil {
		n.log.Warn("leadership transfer after a fail-stop failed; retrying", "err", err)
		return time.After(n.cfg.ElectionTimeout)
	}
	return nil
}

// healthyVoter returns another voter that answers and is not fail-stopped.
func (n *Node) healthyVoter() (id, addr string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	members, err := n.ClusterStatus(ctx, false)
	if err != nil {
		return "", "", false
	}
	voters := map[string]bool{}
	for _, v := range n.voters() {
		voters[v] = true
	}
	for _, m := range members {
		if m.NodeID != n.cfg.NodeID && voters[m.NodeID] && m.Error == "" && m.Failure == "" {
			return m.NodeID, m.RaftAddress, true
		}
	}
	return "", "", false
}
