package host

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/trust"
)

// A voter that was down while members joined (or were promoted) knows
// neither their keys nor a configuration in which they are voters, so it
// refuses them (peerauth.go): while one of them leads, it stays behind, and
// its vote is missing from elections. It learns them from the log, which
// only a leader sends it, and only a leader it accepts.
//
// So a node that has known no leader for a while asks the voters of its
// own configuration, over the member RPC "voters", for theirs: the first
// that names voters this node's configuration lacks (or has as non-voters)
// vouches for them. The node trusts their keys and takes Raft RPCs from
// them as voters (raftVoter), until its own configuration has them. A voter
// of its configuration is already trusted to lead it and to replicate any
// configuration it likes (SECURITY.md): its word on the current voters
// adds nothing an attacker holding its key did not have.

// answerVoters answers a peerrpc.VotersBody.
func (n *Node) answerVoters() (abi.Result, error) {
	var a peerrpc.VotersAnswer
	entries := n.trust.Entries()
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v := peerrpc.VouchedVoter{ID: string(s.ID), Address: string(s.Address)}
		for _, e := range entries {
			if e.NodeID == v.ID {
				v.Trust = append(v.Trust, e.String())
			}
		}
		a.Voters = append(a.Voters, v)
	}
	data, err := abi.Marshal(&a)
	return abi.Result{Data: data}, err
}

// vouchLoop asks for the current voters when this node has known no
// leader for two election timeouts, and forgets what it was told once its
// configuration has it.
func (n *Node) vouchLoop() {
	every := 2 * n.cfg.ElectionTimeout
	leaderless := 0
	for {
		select {
		case <-n.shutdown:
			return
		case <-time.After(every):
		}
		if _, id := n.raft.LeaderWithID(); id != "" {
			leaderless = 0
			if v := n.vouched.Load(); v != nil && n.configurationHas(*v) {
				n.vouched.Store(nil)
				n.log.Info("this node's configuration now has the voters it was told of")
			}
			continue
		}
		if leaderless++; leaderless < 2 {
			continue
		}
		n.askVoters()
	}
}

// configurationHas reports whether every voter of vs is a voter of this
// node's latest configuration, at that address.
func (n *Node) configurationHas(vs map[string]string) bool {
	servers := n.raft.GetConfiguration().Configuration().Servers
	for id, addr := range vs {
		if !slices.ContainsFunc(servers, func(s raft.Server) bool {
			return string(s.ID) == id && string(s.Address) == addr && s.Suffrage == raft.Voter
		}) {
			return false
		}
	}
	return true
}

// askVoters asks the other voters of this node's configuration for theirs,
// and takes the first answer that names voters it lacks.
func (n *Node) askVoters() {
	servers := n.raft.GetConfiguration().Configuration().Servers
	if !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.cfg.NodeID }) {
		return // not a member (yet, or any more): nothing to catch up with
	}
	body, _ := (&peerrpc.VotersBody{}).Marshal()
	for _, s := range servers {
		if s.Suffrage != raft.Voter || string(s.ID) == n.cfg.NodeID {
			continue
		}
		a, err := n.askVotersOf(string(s.Address), body)
		if err != nil {
			n.log.Debug("asking a voter for the current voters", "peer", s.ID, "err", err)
			continue
		}
		if err := n.takeVouched(string(s.ID), servers, a); err != nil {
			n.log.Warn("refused the voters a voter named", "peer", s.ID, "err", err)
			continue
		}
		if n.vouched.Load() != nil {
			return
		}
	}
}

func (n *Node) askVotersOf(addr string, body []byte) (peerrpc.VotersAnswer, error) {
	var a peerrpc.VotersAnswer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := n.callMember(ctx, addr, peerrpc.Voters.Name, body, &a)
	return a, err
}

// takeVouched trusts the voters of a that this node's configuration
// (servers) lacks as voters, and takes Raft RPCs from them.
func (n *Node) takeVouched(from string, servers []raft.Server, a peerrpc.VotersAnswer) error {
	vouched := map[string]string{}
	var entries []trust.Entry
	revoked := n.trust.Revoked()
	for _, v := range a.Voters {
		if v.ID == n.cfg.NodeID || slices.ContainsFunc(servers, func(s raft.Server) bool {
			return string(s.ID) == v.ID && string(s.Address) == v.Address && s.Suffrage == raft.Voter
		}) {
			continue
		}
		if slices.Contains(revoked, v.ID) {
			// This node applied that node's removal: the voucher is
			// behind it, and only the log may trust that node again.
			return fmt.Errorf("it names %q, whose removal this node applied", v.ID)
		}
		for _, l := range v.Trust {
			e, err := trust.ParseTrustLine(l)
			if err != nil {
				return err
			}
			if e.NodeID != v.ID {
				return fmt.Errorf("a trust line for %q among %q's", e.NodeID, v.ID)
			}
			entries = append(entries, e)
		}
		if v.Address == "" {
			return fmt.Errorf("voter %q without an address", v.ID)
		}
		vouched[v.ID] = v.Address
	}
	if len(vouched) == 0 {
		return nil
	}
	for _, e := range entries {
		if err := n.trust.Add(e.NodeID, e.Key); err != nil {
			return err
		}
	}
	n.vouched.Store(&vouched)
	n.log.Info("a voter of this node's configuration named voters it lacks: taking Raft RPCs from them until its configuration has them",
		"from", from, "voters", strings.Join(slices.Sorted(maps.Keys(vouched)), ","))
	return nil
}
