package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/transport"
)

// Membership changes are checked so that no request, however it reaches
// the leader (the seed's GET /join, POST /v1/cluster/join, a forwarded
// join), can break the cluster:
//
//   - proof of possession: before a node is added, or a member's address
//     changed, the leader connects to the address over SSH and requires the
//     host key trusted for that node ID. Only the holder of the ID's key can
//     be added at an address, so a request cannot move a live member to an
//     address where it is not, nor add a voter nobody runs.
//   - the address must be the one the node advertises (its ping answer):
//     its Raft RPCs carry that address, and members refuse a vote request
//     whose address is not the configuration's (peerauth.go). A member
//     joined again at another spelling of its address ("h:08088" for
//     "h:8088", a name for an IP) would still count towards the quorum,
//     but never be elected nor get a vote: found by an attack on the
//     seed's GET /join, which left the cluster unable to elect a leader
//     once the one correctly spelled voter failed.
//   - an address already used by another member is refused (the leader
//     would otherwise expect that member's key there, and lose it).
//   - a node ID that is a member keeps its key: trusting another key for it
//     is refused (a second node started with the same --node-id).
//   - new members are added as non-voters and promoted to voters once they
//     hold the log up to their own addition (Consul autopilot's rule: a
//     voter that cannot vote yet weakens the quorum).
//   - a change that would leave fewer reachable voters than a quorum of the
//     new configuration is refused.

// probeTimeout bounds the SSH connection made to prove a node's key.
const probeTimeout = transport.DefaultDialTimeout

// errUnreachable marks a failed probe.
var errUnreachable = errors.New("unreachable")

// errAdvertises marks a probe of a node that advertises another Raft
// address than the one it was reached at.
type errAdvertises struct{ addr string }

func (e errAdvertises) Error() string { return "the node advertises its Raft address as " + e.addr }

// probe proves that the node at addr holds a key trusted for id: the
// transport's handshake requires that host key, and an answer (even a
// refusal of the ping) means the handshake passed. A node that answers
// with the Raft address it advertises must advertise addr (errAdvertises).
func (n *Node) probe(ctx context.Context, id, addr string) error {
	n.peersMu.RLock()
	mapped, known := n.peers[addr]
	n.peersMu.RUnlock()
	if !known || mapped != id {
		n.peersMu.Lock()
		n.peers[addr] = id
		n.peersMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	raw, err := n.trans.Call(ctx, addr, peerrpc.Ping.Name, pingBody)
	var re *transport.RemoteError
	if errors.As(err, &re) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUnreachable, err)
	}
	var resp peerrpc.Response
	var a peerrpc.PingAnswer
	if resp.Unmarshal(raw) != nil {
		return nil // the handshake passed; the answer is not ours to judge
	}
	if res, err := resp.Result(); err == nil && len(res.Data) > 0 && abi.Unmarshal(res.Data, &a) == nil &&
		a.RaftAddress != "" && a.RaftAddress != addr {
		return errAdvertises{a.RaftAddress}
	}
	return nil
}

// reachable reports which of ids answer a ping within 1 s (this node does).
func (n *Node) reachable(ctx context.Context, servers []raft.Server) map[raft.ServerID]bool {
	out := make(map[raft.ServerID]bool, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		if string(s.ID) == n.cfg.NodeID {
			mu.Lock()
			out[s.ID] = true
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := n.trans.Call(pctx, string(s.Address), peerrpc.Ping.Name, pingBody)
			var re *transport.RemoteError
			ok := err == nil || errors.As(err, &re)
			mu.Lock()
			out[s.ID] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// checkQuorum refuses a change to the configuration whose voters would be
// next, when fewer of them than a quorum answer now.
func (n *Node) checkQuorum(ctx context.Context, what string, next []raft.Server) error {
	var voters []raft.Server
	for _, s := range next {
		if s.Suffrage == raft.Voter {
			voters = append(voters, s)
		}
	}
	up := n.reachable(ctx, voters)
	var live, down []string
	for _, s := range voters {
		if up[s.ID] {
			live = append(live, string(s.ID))
		} else {
			down = append(down, string(s.ID))
		}
	}
	if quorum := len(voters)/2 + 1; len(live) < quorum {
		return fmt.Errorf("%w: %s would leave %d reachable voter(s) (%s) of %d, fewer than a quorum of %d (unreachable: %s); "+
			"bring members back first, or recover from quorum loss (docs/operations.md)",
			ErrInvalid, what, len(live), strings.Join(live, ", "), len(voters), quorum, strings.Join(down, ", "))
	}
	return nil
}

// without returns servers minus id.
func without(servers []raft.Server, id raft.ServerID) []raft.Server {
	var out []raft.Server
	for _, s := range servers {
		if s.ID != id {
			out = append(out, s)
		}
	}
	return out
}

// checkKeyUnchanged refuses to trust key for nodeID when nodeID is a
// member whose replicated key is another one.
func (n *Node) checkKeyUnchanged(nodeID string, key ssh.PublicKey) error {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	member := false
	for _, s := range cf.Configuration().Servers {
		member = member || string(s.ID) == nodeID
	}
	if !member {
		return nil
	}
	want := string(key.Marshal())
	var others []string
	for _, e := range n.trust.Entries() {
		if e.NodeID != nodeID {
			continue
		}
		if string(e.Key.Marshal()) == want {
			return nil
		}
		others = append(others, ssh.FingerprintSHA256(e.Key))
	}
	if len(others) == 0 {
		return nil
	}
	return fmt.Errorf("%w: node ID %q is already a member, with key %s; refusing key %s for it "+
		"(is a second node running with --node-id %s?). To give the member a new key, remove it first",
		ErrInvalid, nodeID, strings.Join(others, ", "), ssh.FingerprintSHA256(key), nodeID)
}

// catchUpPoll is how often promote asks a new member how far its log is.
const catchUpPoll = 100 * time.Millisecond

// promote waits until the non-voter id holds the log up to index (the
// entry that added it), then makes it a voter, if a quorum of the new
// voters is reachable.
func (n *Node) promote(ctx context.Context, id raft.ServerID, addr raft.ServerAddress, index uint64) error {
	for {
		last, err := n.lastIndexOf(ctx, string(addr))
		if err == nil && last >= index {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s was added as a non-voter but has not caught up yet (its log is at %d of %d; %v); "+
				"join it again to promote it to voter once it has", ErrTimeout, id, last, index, err)
		case <-n.shutdown:
			return ErrClosed
		case <-time.After(catchUpPoll):
		}
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftErr(err)
	}
	next := append(without(cf.Configuration().Servers, id), raft.Server{ID: id, Address: addr, Suffrage: raft.Voter})
	if err := n.checkQuorum(ctx, "promoting "+string(id)+" to voter", next); err != nil {
		return err
	}
	if err := n.raft.AddVoter(id, addr, 0, n.timeout(ctx)).Error(); err != nil {
		return mapRaftErr(err)
	}
	n.log.Info("member promoted to voter", "id", id)
	return nil
}

// lastIndexOf asks the node at addr for its last log index.
func (n *Node) lastIndexOf(ctx context.Context, addr string) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var s NodeStatus
	if err := n.callMember(cctx, addr, peerrpc.Status.Name, statusBody, &s); err != nil {
		return 0, err
	}
	return s.LastIndex, nil
}
