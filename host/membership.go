package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/fsm"
)

// JoinRequest asks the cluster to add a node (it crosses the forwarding
// RPC in a join: host/peerrpc).
type JoinRequest = peerrpc.JoinRequest

// JoinResponse tells a new node whom to trust.
type JoinResponse struct {
	// Trust lists every replicated trust line ("ssh-ed25519 AAAA… <id>"), so
	// the new node accepts connections from the members.
	Trust []string `json:"trust" msgpack:"trust"`
}

// Member is one server of the cluster.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"` // Raft (SSH)
	// APIAddress and MgmtAddress are the member's HTTP API URL and
	// management address, as it published them (addresses.go); empty until
	// it has.
	APIAddress  string `json:"api_address,omitempty"`
	MgmtAddress string `json:"mgmt_address,omitempty"`
	Suffrage    string `json:"suffrage"` // "voter" or "nonvoter"
	Leader      bool   `json:"leader"`
	// LastContact is when the node answering saw this member respond (the
	// leader pings every member; a follower knows only the leader's contact).
	LastContact time.Time `json:"last_contact,omitzero"`
	Reachable   bool      `json:"reachable"`
}

// Join adds a node to the cluster (forwarded to the leader). It is idempotent:
// joining a member with the same ID and address again succeeds.
//
// The leader first proves that the node at req.Address holds the key trusted
// for req.NodeID (it connects to it over SSH), adds it as a non-voter, and,
// unless req.NonVoter, promotes it to voter once its log reaches its own
// addition. A join that would move a member to an address where it does not
// answer, take another member's address, or leave fewer reachable voters
// than a quorum is refused with ErrInvalid (see joinsafety.go).
func (n *Node) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var res abi.Result
	var err error
	if n.isLeader() {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout+time.Minute) // as a forwarded join's
			defer cancel()
		}
		return n.joinLocal(ctx, req)
	}
	res, err = n.forward(ctx, &peerrpc.JoinBody{Join: req})
	if err != nil {
		return JoinResponse{}, err
	}
	var resp JoinResponse
	if err := abi.Unmarshal(res.Data, &resp); err != nil {
		return resp, fmt.Errorf("raftkv: bad join response: %w", err)
	}
	return resp, nil
}

func (n *Node) joinLocal(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	if err := trust.ValidateNodeID(req.NodeID); err != nil {
		return JoinResponse{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.Address == "" {
		return JoinResponse{}, fmt.Errorf("%w: join: address is required", ErrInvalid)
	}
	if req.PublicKey != "" {
		if err := n.checkJoinKey(req.NodeID, req.PublicKey); err != nil {
			return JoinResponse{}, err
		}
		if err := n.trustLocal(ctx, req.NodeID, req.PublicKey); err != nil {
			return JoinResponse{}, err
		}
	}
	// From here until the join ends, no other key can be trusted for the ID
	// (trustLocal), and no other join of it runs: the key count below stays
	// true while the leader proves the node's key and adds it.
	done, err := n.startJoining(ctx, req.NodeID)
	if err != nil {
		return JoinResponse{}, err
	}
	defer done()
	// A voter whose key nobody trusts would never receive the log, yet count
	// towards the quorum: refuse it before it is in the configuration.
	if !n.trust.Trusts(req.NodeID) {
		return JoinResponse{}, fmt.Errorf("%w: join: no key is trusted for node %q: trust it first (raftkv trust LINE, "+
			"or POST /v1/cluster/trust {\"line\": \"ssh-ed25519 AAAA… %s\"}), or send its key in the join request (public_key)",
			ErrInvalid, req.NodeID, req.NodeID)
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return JoinResponse{}, mapRaftErr(err)
	}
	id, addr := raft.ServerID(req.NodeID), raft.ServerAddress(req.Address)
	servers := cf.Configuration().Servers
	var current *raft.Server
	for i, s := range servers {
		switch {
		case s.ID == id:
			current = &servers[i]
		case s.Address == addr:
			return JoinResponse{}, fmt.Errorf("%w: join %s: address %s is member %s's; remove %s first if it has gone",
				ErrInvalid, id, addr, s.ID, s.ID)
		}
	}
	if current != nil && current.Address == addr && (current.Suffrage == raft.Voter || req.NonVoter) {
		return n.joinResponse(), nil // already a member (a voter asked to be a non-voter stays a voter)
	}
	// A member has one key (checkKeyUnchanged keeps it so); an ID may have
	// been given more before it joins (a stale one from an earlier attempt,
	// a removed node's old key trusted under it): the join would make each
	// of them a member's, so whoever holds any could act as it.
	if keys := n.trust.Keys(req.NodeID); len(keys) > 1 {
		fps := make([]string, len(keys))
		for i, k := range keys {
			fps[i] = ssh.FingerprintSHA256(k)
		}
		return JoinResponse{}, fmt.Errorf("%w: join %s: %d keys are trusted for it (%s) and a member has one: "+
			"revoke them (DELETE /v1/cluster/members/%s, or 'raftkv remove %s', revokes a non-member's keys), "+
			"then trust the key it runs with, or join with it (public_key)",
			ErrInvalid, id, len(keys), strings.Join(fps, ", "), id, id)
	}
	// Proof of possession: the node at addr must hold id's key.
	if err := n.probe(ctx, req.NodeID, req.Address); err != nil {
		var adv errAdvertises
		if errors.As(err, &adv) {
			return JoinResponse{}, fmt.Errorf("%w: join %s at %s: the node answering there advertises its Raft address as %s; "+
				"join it at that address (at any other spelling it could neither be elected nor get a vote)", ErrInvalid, id, addr, adv.addr)
		}
		return JoinResponse{}, fmt.Errorf("%w: join %s: no node holding %s's key answers at %s over SSH (%v); "+
			"start it first, trusting the members (raftkv serve --join does both)", ErrInvalid, id, id, addr, err)
	}
	if current != nil && current.Address != addr {
		// The member has moved: it proved its key at the new address.
		if current.Suffrage == raft.Voter {
			if err := n.checkQuorum(ctx, "moving "+string(id)+" to "+string(addr), without(servers, id)); err != nil {
				return JoinResponse{}, err
			}
		}
		if err := n.raft.RemoveServer(id, 0, n.timeout(ctx)).Error(); err != nil {
			return JoinResponse{}, mapRaftErr(err)
		}
		n.log.Info("member moved: removed at its old address", "id", id, "old_address", current.Address, "address", addr)
		current = nil
	}
	n.setPeers(raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}})
	if current == nil {
		f := n.raft.AddNonvoter(id, addr, 0, n.timeout(ctx))
		if err := f.Error(); err != nil {
			return JoinResponse{}, mapRaftErr(err)
		}
		n.log.Info("member added as non-voter", "id", req.NodeID, "address", req.Address, "voter_wanted", !req.NonVoter)
		if req.NonVoter {
			return n.joinResponse(), nil
		}
		if err := n.promote(ctx, id, addr, f.Index()); err != nil {
			return JoinResponse{}, err
		}
		return n.joinResponse(), nil
	}
	// A non-voter at the same address asks to vote.
	if err := n.promote(ctx, id, addr, n.raft.LastIndex()); err != nil {
		return JoinResponse{}, err
	}
	return n.joinResponse(), nil
}

func (n *Node) joinResponse() JoinResponse {
	var r JoinResponse
	for _, e := range n.trust.Entries() {
		r.Trust = append(r.Trust, e.String())
	}
	// A new leader puts its own key in the replicated list only after its
	// barrier: a node trusting what an answer given before then listed
	// would refuse the leader's proof-of-possession check of its join.
	if self := n.TrustLine(); !slices.Contains(r.Trust, self) {
		r.Trust = append(r.Trust, self)
	}
	return r
}

func (n *Node) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return n.cfg.ApplyTimeout
}

// Remove removes a member by ID and revokes its keys on every node. It
// returns once both are committed. Between the two it waits, up to
// removalGrace, for the removed node to hold its removal
// (awaitRemovalKnown). A removal and a join of the same ID do not overlap:
// one waits for the other to end (startJoining).
//
// The leader is not removed by itself: revoking its own key first would cut
// it off from the followers before its removal could commit (leaving a
// revoked voter in the configuration), and once its removal commits it no
// longer leads and cannot revoke anything. So a leader asked to remove itself
// hands leadership to another voter (the removal fails with ErrInvalid when
// there is none) and the new leader removes it and revokes its key like any
// other member's; Remove sends the request on to the new leader. A node
// asked to remove itself cannot hear the answer: the leader closes its
// connections when it revokes its key. It reports ErrUnknownOutcome then;
// send the removal to another member for a definite answer.
//
// An ID that is no longer a member but still has keys in the replicated trust
// list (a removal whose revocation failed) has them revoked.
func (n *Node) Remove(ctx context.Context, nodeID string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	for {
		var err error
		if n.isLeader() {
			err = n.removeLocal(ctx, nodeID)
		} else {
			_, err = n.forward(ctx, &peerrpc.RemoveBody{NodeID: nodeID})
		}
		switch {
		case nodeID == n.cfg.NodeID && errors.Is(err, ErrUnknownOutcome):
			return fmt.Errorf("%w; the leader closes a removed node's connections when it revokes its key, so %s "+
				"cannot learn the outcome of its own removal: list the members through another node", err, nodeID)
		case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
			// Nothing was proposed: leadership moved (or was handed over so
			// that the leader can be removed). Retry at the new leader.
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: removing %s: %v (last: %v)", ErrTimeout, nodeID, ctx.Err(), err)
		case <-n.shutdown:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) removeLocal(ctx context.Context, nodeID string) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftErr(err)
	}
	found, otherVoters, addr := false, 0, ""
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == nodeID {
			found, addr = true, string(s.Address)
		}
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			otherVoters++
		}
	}
	switch {
	case !found && n.hasReplicatedKey(nodeID):
		return n.revoke(ctx, nodeID)
	case !found:
		return fmt.Errorf("%w: no member %q", ErrNotFound, nodeID)
	case nodeID == n.cfg.NodeID:
		return n.handOver(ctx, otherVoters)
	}
	// No join of the ID runs from here until its key is revoked: a join in
	// the wait between the removal and the revocation (awaitRemovalKnown)
	// would add the node back, with a key about to be revoked.
	done, err := n.startJoining(ctx, nodeID)
	if err != nil {
		return err
	}
	defer done()
	if err := n.checkQuorum(ctx, "removing "+nodeID, without(cf.Configuration().Servers, raft.ServerID(nodeID))); err != nil {
		return err
	}
	if err := n.raft.RemoveServer(raft.ServerID(nodeID), 0, n.timeout(ctx)).Error(); err != nil {
		return mapRaftErr(err)
	}
	n.log.Info("member removed", "id", nodeID)
	n.awaitRemovalKnown(ctx, nodeID, addr)
	return n.revoke(ctx, nodeID)
}

// removalGrace bounds how long Remove waits, between a member's removal and
// the revocation of its key, for the removed node to hold the entry that
// removes it (awaitRemovalKnown).
const removalGrace = 5 * time.Second

// awaitRemovalKnown waits until the removed node id at addr says it was
// removed (its status's Removed), at most removalGrace or half of what is
// left of ctx, and no longer once a call to it fails other than by timing
// out (it is down: nothing is on its way to it).
//
// A removed node learns its removal only from the configuration entry that
// removes it, which Raft sends it once, on its way out; revoking its key
// closes its connections, and an append still in flight then never lands.
// The node then never knows it was removed: it calls elections that every
// member refuses at the SSH handshake, and says it has no leader where it
// should say it was removed (CI, 2026-12-05: a node removed while it was
// catching up, its key revoked 90 ms after Raft stopped replicating to it).
// Waiting cannot help a node that Raft's last append missed altogether
// (down or cut off when it was removed); it logs that.
func (n *Node) awaitRemovalKnown(ctx context.Context, id, addr string) {
	wait := removalGrace
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	deadline := time.Now().Add(wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, min(time.Until(deadline), time.Second))
		var s NodeStatus
		err := n.callMember(cctx, addr, peerrpc.Status.Name, statusBody, &s)
		cancel()
		switch {
		case err == nil && s.Removed != "":
			return
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			// Refused, reset or unauthenticated at once: nothing is on its
			// way to it. (A slow link times out; that is worth the wait.)
			n.log.Info("removed member is unreachable: it cannot learn its removal, and keeps calling elections that the members refuse",
				"id", id, "err", err)
			return
		case time.Now().After(deadline):
			n.log.Warn("removed member did not confirm its removal in time; revoking its key: it may keep calling elections that the members refuse",
				"id", id, "waited", wait, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-n.shutdown:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// handOver transfers leadership to another voter, so that the new leader can
// remove this node (see Remove). It returns ErrNotLeader once it has.
func (n *Node) handOver(ctx context.Context, otherVoters int) error {
	if otherVoters == 0 {
		return fmt.Errorf("%w: %s is the only voter: add another voter before removing it", ErrInvalid, n.cfg.NodeID)
	}
	// A transfer that fails (the target did not win in time) changed
	// nothing: try again, a few times.
	for attempt := 1; ; attempt++ {
		answered, err := waitFuture(ctx, n.raft.LeadershipTransfer(), nil)
		if !answered {
			return fmt.Errorf("%w: handing leadership over before removing %s: %v", ErrTimeout, n.cfg.NodeID, err)
		}
		if err == nil || !n.isLeader() {
			break
		}
		if attempt == 3 {
			return fmt.Errorf("handing leadership over before removing %s: %w", n.cfg.NodeID, mapRaftErr(err))
		}
		n.log.Warn("leadership transfer failed; retrying", "err", err, "attempt", attempt)
	}
	n.log.Info("handed leadership over to be removed")
	return fmt.Errorf("%w: %s handed leadership over, so that the new leader removes it", ErrNotLeader, n.cfg.NodeID)
}

// revoke removes nodeID's keys from the replicated trust list and refuses
// them on every node, through the log.
func (n *Node) revoke(ctx context.Context, nodeID string) error {
	payload, _ := abi.Marshal(&fsm.TrustChange{NodeID: nodeID})
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindTrustRemove, Payload: payload})
	if err != nil {
		return err
	}
	if r.Err == nil {
		n.log.Info("member's keys revoked", "id", nodeID)
	}
	return r.Err
}

// hasReplicatedKey reports whether the replicated trust list has a key for
// nodeID.
func (n *Node) hasReplicatedKey(nodeID string) bool {
	return slices.ContainsFunc(n.trust.Entries(), func(e trust.Entry) bool { return e.NodeID == nodeID })
}

// Trust authorises a node's public key on every member, through the log, and
// returns the cluster's replicated trust lines. line is "ssh-ed25519 AAAA…
// <node-id>"; nodeID may be empty when the line names it.
//
// Adding a node takes two steps because a new voter must accept the leader's
// connection before its addition can commit: Trust(its key) on any member,
// AcceptTrust(the returned lines) on the new node, then Join.
func (n *Node) Trust(ctx context.Context, nodeID, line string) ([]string, error) {
	var data []byte
	if !n.isLeader() {
		res, err := n.forward(ctx, &peerrpc.TrustBody{NodeID: nodeID, Line: line})
		if err != nil {
			return nil, err
		}
		data = res.Data
	} else {
		if err := n.trustLocal(ctx, nodeID, line); err != nil {
			return nil, err
		}
		data, _ = abi.Marshal(n.joinResponse().Trust)
	}
	var lines []string
	if err := abi.Unmarshal(data, &lines); err != nil {
		return nil, fmt.Errorf("raftkv: bad trust response: %w", err)
	}
	return lines, nil
}

// AcceptTrust adds trust lines (from Trust or a JoinResponse) to this node's
// trust set, so that it accepts the members' connections before it joins.
// The replicated list replaces them once the node has caught up.
func (n *Node) AcceptTrust(lines []string) error {
	for _, l := range lines {
		e, err := trust.ParseTrustLine(l)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := n.trust.Add(e.NodeID, e.Key); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return n.writeTrust(n.fsm.Applied())
}

// checkJoinKey refuses a join that sends a key (line) for an ID that has
// another key trusted already: trusting it would give the ID two keys,
// which the join then refuses, leaving the key it sent trusted (an audit
// found it so: every later join was refused until the keys were revoked).
// A key sent again, or the first key of an ID, passes.
func (n *Node) checkJoinKey(nodeID, line string) error {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil {
		return fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	var others []string
	for _, k := range n.trust.Keys(nodeID) {
		if !bytes.Equal(k.Marshal(), key.Marshal()) {
			others = append(others, ssh.FingerprintSHA256(k))
		}
	}
	if len(others) == 0 {
		return nil
	}
	return fmt.Errorf("%w: join %s: another key is trusted for it (%s), not the one this join sends (%s), which is not trusted: "+
		"revoke it (DELETE /v1/cluster/members/%s, or 'raftkv remove %s', revokes a non-member's keys), or join with it",
		ErrInvalid, nodeID, strings.Join(others, ", "), ssh.FingerprintSHA256(key), nodeID, nodeID)
}

func (n *Node) trustLocal(ctx context.Context, nodeID, line string) error {
	key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil {
		return fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	if nodeID == "" {
		nodeID = comment
	}
	if err := trust.ValidateNodeID(nodeID); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := trust.CheckKeyType(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if n.replicatedTrust(nodeID, key) {
		return nil // already in the replicated trust list
	}
	n.joiningMu.Lock()
	_, joining := n.joining[nodeID]
	n.joiningMu.Unlock()
	if joining {
		return fmt.Errorf("%w: node %q is joining or being removed: no other key can be trusted for it until that ends", ErrInvalid, nodeID)
	}
	if err := n.checkKeyUnchanged(nodeID, key); err != nil {
		return err
	}
	payload, _ := abi.Marshal(&fsm.TrustChange{NodeID: nodeID, Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))})
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindTrustAdd, Payload: payload})
	if err != nil {
		return err
	}
	return r.Err
}

// startJoining marks id as joining, or being removed, through this leader
// until done is called. A second join of id waits for the first to end (a
// client that retried a slow join then finds the node a member), and a join
// waits for a removal to end (it then finds the node's key revoked).
func (n *Node) startJoining(ctx context.Context, id string) (done func(), err error) {
	for {
		n.joiningMu.Lock()
		running, ok := n.joining[id]
		if !ok {
			if n.joining == nil {
				n.joining = map[string]chan struct{}{}
			}
			ch := make(chan struct{})
			n.joining[id] = ch
			n.joiningMu.Unlock()
			return func() {
				n.joiningMu.Lock()
				delete(n.joining, id)
				n.joiningMu.Unlock()
				close(ch)
			}, nil
		}
		n.joiningMu.Unlock()
		select {
		case <-running:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for another join or the removal of %q to end: %v", ErrTimeout, id, ctx.Err())
		case <-n.shutdown:
			return nil, ErrClosed
		}
	}
}

// replicatedTrust reports whether key is bound to nodeID in the replicated
// trust list (authorized_keys files do not count: they are not replicated).
func (n *Node) replicatedTrust(nodeID string, key ssh.PublicKey) bool {
	want := string(key.Marshal())
	for _, e := range n.trust.Entries() {
		if e.NodeID == nodeID && string(e.Key.Marshal()) == want {
			return !slices.Contains(n.trust.Revoked(), nodeID)
		}
	}
	return false
}

// pingBody and statusBody are the bodies of a ping and of a status request
// without digests.
var (
	pingBody, _   = (&peerrpc.PingBody{}).Marshal()
	statusBody, _ = (&peerrpc.StatusBody{}).Marshal()
)

// Members lists the cluster's servers with their replicated addresses. The
// other members are pinged (500 ms) to fill Reachable and LastContact; a
// follower takes the leader's from Raft's last contact.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, mapRaftErr(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	servers := cf.Configuration().Servers
	out := make([]Member, len(servers))
	addrs := n.fsm.Addresses()
	var wg sync.WaitGroup
	for i, s := range servers {
		m := &out[i]
		*m = Member{ID: string(s.ID), Address: string(s.Address), Suffrage: "voter", Leader: s.ID == leaderID}
		m.APIAddress, m.MgmtAddress = addrs[m.ID].API, addrs[m.ID].Mgmt
		if s.Suffrage != raft.Voter {
			m.Suffrage = "nonvoter"
		}
		switch {
		case m.ID == n.cfg.NodeID:
			m.Reachable, m.LastContact = true, time.Now()
		case m.Leader && !n.isLeader():
			m.LastContact = n.raft.LastContact()
			m.Reachable = !m.LastContact.IsZero() && time.Since(m.LastContact) < 2*n.cfg.HeartbeatTimeout
		default:
			// Any node pings the others: a follower used to report every
			// other follower unreachable, knowing only the leader's contact.
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				if _, err := n.trans.Call(pctx, m.Address, peerrpc.Ping.Name, pingBody); err == nil {
					m.Reachable, m.LastContact = true, time.Now()
				}
			}()
		}
	}
	wg.Wait()
	return out, nil
}

// voters returns the IDs of the voting members.
func (n *Node) voters() []string {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// Suffrage returns this node's suffrage in its latest Raft configuration:
// "voter", "nonvoter", or "" when the configuration does not list it (yet).
func (n *Node) Suffrage() string {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return ""
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != n.cfg.NodeID {
			continue
		}
		if s.Suffrage == raft.Voter {
			return "voter"
		}
		return "nonvoter"
	}
	return ""
}
