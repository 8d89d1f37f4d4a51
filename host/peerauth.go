package host

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/raftauth"
)

// Who may send Raft RPCs to this node. The transport has proven the peer's
// node ID (its key is trusted for that ID) and raftauth has checked that the
// request's header names that same node. What is left is the configuration:
// every Raft RPC comes from a leader (AppendEntries, InstallSnapshot,
// TimeoutNow) or a candidate (RequestVote, RequestPreVote), and only a voter
// can be either. So the peer must be a voter of this node's latest
// configuration, at the address the configuration has for it.
//
// A node with an empty configuration has never been a member: it is waiting
// for the leader that adds it (a pending join) and has no configuration to
// check against. If its join named the cluster's voters (ExpectLeaders, from
// the trust answer of the member it joins through: serve --join does this),
// it accepts only them, any of which may be the leader that adds it;
// otherwise (a node added by an operator's join from elsewhere) any trusted
// peer that does not pose as another. Its trust list is what the member it
// joined through sent it.
//
// The configuration is this node's: a follower that missed the entries
// adding and promoting the current leader (it was down or cut off while
// they were committed) refuses that leader, as the SSH layer refuses a
// leader whose key the follower has not learned, unless a voter of its
// configuration vouched for it (vouch.go).

var errStarting = errors.New("node is still starting")

// startWait bounds how long a Raft RPC that arrives while the node starts
// waits for Raft to exist (it would wait as long for Raft to take it).
const startWait = 30 * time.Second

func (n *Node) authorizeRaft(peer string, req raftauth.Request) error {
	s, ok, err := n.raftVoter(peer)
	if err != nil || !ok {
		return err
	}
	if string(s.Address) != req.Addr {
		return fmt.Errorf("node %q is at %s in the configuration, not at %s", peer, s.Address, req.Addr)
	}
	return nil
}

// admitRaft is authorizeRaft before the request is read: the same check of
// the peer, without the address its header claims.
func (n *Node) admitRaft(peer string, _ raftauth.Type) error {
	_, _, err := n.raftVoter(peer)
	return err
}

// raftVoter returns peer's server in this node's latest configuration, or
// ok false when the configuration is empty (any trusted peer passes, see
// above); an error when the peer may not send Raft RPCs.
func (n *Node) raftVoter(peer string) (s raft.Server, ok bool, err error) {
	r := n.raftReady.Load()
	if r == nil {
		select {
		case <-n.raftUp:
			r = n.raftReady.Load()
		case <-n.shutdown:
			return s, false, errStarting
		case <-time.After(startWait):
			return s, false, errStarting
		}
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		if voters := n.joinVoters.Load(); voters != nil && !slices.Contains(*voters, peer) {
			return s, false, fmt.Errorf("node %q is not one of the voters this node's join named (%s): this node is waiting to be added by one of them", peer, strings.Join(*voters, ", "))
		}
		return s, false, nil
	}
	if v := n.vouched.Load(); v != nil {
		if addr, ok := (*v)[peer]; ok {
			return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(peer), Address: raft.ServerAddress(addr)}, true, nil
		}
	}
	for _, s := range servers {
		if string(s.ID) != peer {
			continue
		}
		if s.Suffrage != raft.Voter {
			return s, false, fmt.Errorf("node %q is not a voter: it can neither lead nor stand for election", peer)
		}
		return s, true, nil
	}
	return s, false, fmt.Errorf("node %q is not in the configuration", peer)
}

// roleOf returns what node id is in this node's latest configuration. A
// node whose configuration is empty (not yet a member), or that is still
// starting (only ping gets here then, see serveRPC), counts its callers as
// non-voters: they are the members adding it.
func (n *Node) roleOf(id string) peerrpc.Role {
	r := n.raftReady.Load()
	if r == nil {
		return peerrpc.NonVoter
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		return peerrpc.NonVoter
	}
	for _, s := range servers {
		if string(s.ID) == id {
			if s.Suffrage == raft.Voter {
				return peerrpc.Voter
			}
			return peerrpc.NonVoter
		}
	}
	return peerrpc.Trusted
}

// authorizeRPC applies peerrpc's policy to a forwarded request of method m
// from peer (its ID proven over SSH; req nil: not decoded yet, so it names
// no subject and carries no token). A refusal is logged and counted.
func (n *Node) authorizeRPC(peer string, m peerrpc.Method, req peerrpc.Body) error {
	var subject, token string
	if req != nil {
		subject, token = req.Subject(), req.ClusterToken()
	}
	c := peerrpc.Caller{ID: peer, Role: n.roleOf(peer), Token: token}
	if err := peerrpc.Authorize(m, c, subject, n.cfg.Token); err != nil {
		n.metrics.rpcRefused.Inc()
		n.log.Warn("refused a peer RPC", "peer", peer, "role", c.Role.String(), "method", m.Name, "subject", subject, "reason", err.Error())
		return err
	}
	return nil
}

// Voters returns the IDs of the voters in this node's latest configuration
// (none before it is a member). The trust answer of the HTTP API carries
// them, for ExpectLeaders on a joining node.
func (n *Node) Voters() []string {
	var ids []string
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// ExpectLeaders narrows whom this node takes Raft RPCs from while it waits
// to be added (its configuration is empty): only the nodes ids, the
// cluster's voters as a member named them when it trusted this node (one of
// them is the leader that will add it). Without it, a node waiting to be
// added takes them from any trusted key, which a trusted non-member could
// use to feed it a log of its own. Once the node is in a configuration, the
// configuration decides and ids no longer matter. An empty ids is ignored.
func (n *Node) ExpectLeaders(ids []string) {
	if len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	n.joinVoters.Store(&ids)
	n.log.Info("until it is added, this node takes Raft RPCs only from the voters its join named", "voters", strings.Join(ids, ","))
}
