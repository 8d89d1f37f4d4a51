package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Divergence detection (etcd's corruption check is the model).
//
// Every node must compute the same state from the same log; a plugin that
// keeps something in its guest memory across entries (a global counter)
// does not, once one node's instance has started afresh (a restart, a
// snapshot restore), and nothing in the apply path can tell. So, every
// Config.DigestCheckInterval, the leader proposes a digest-check entry
// (kindDigestCheck, no payload). Every node that applies it records, at
// that index, the digest of each namespace's state and the hash of each
// plugin's active module. Applying it changes nothing: the state is the
// same with or without it. The leader then sends its own digests to every
// other member (the "digest" peer RPC); each waits until it has applied
// the entry, compares, and answers with its own digests, so that the
// leader compares too. A mismatch is a divergence, recorded on both sides
// (the gauge raftkv_state_divergence, a WARN with both digests and both
// node IDs, /healthz degraded naming the plugin, the divergence list of
// the node's status) until a later check finds that pair equal again.
//
// A node that did not apply the entry (it restored a snapshot past it, or
// restarted and no longer holds the record) answers that it has no digest
// at that index: it is compared at the next check. Records are kept in
// memory only, the last digestRecords of them.
//
// Applying the entry costs the FSM an immutable view of the state
// (O(namespaces), no copy of the keys); the digests are computed off the
// FSM goroutine by whoever asks first (a namespace's digest is a pass over
// its keys, cached while it is not written).

// Divergence is a plugin whose state (or active module) differs between
// this node and another at the same log index.
type Divergence struct {
	Plugin string `json:"plugin" msgpack:"plugin"`
	Index  uint64 `json:"index" msgpack:"index"`
	// Peer is the other node; Digest and PeerDigest the state digests
	// here and there ("" for an empty state), Module and PeerModule the
	// active modules' hashes.
	Peer       string    `json:"peer" msgpack:"peer"`
	Digest     string    `json:"digest" msgpack:"digest"`
	PeerDigest string    `json:"peer_digest" msgpack:"peer_digest"`
	Module     string    `json:"module,omitempty" msgpack:"module,omitempty"`
	PeerModule string    `json:"peer_module,omitempty" msgpack:"peer_module,omitempty"`
	Detected   time.Time `json:"detected" msgpack:"detected"`
}

func (d Divergence) String() string {
	what := fmt.Sprintf("state digest %s here, %s on %s", short(d.Digest), short(d.PeerDigest), d.Peer)
	if d.Module != d.PeerModule {
		what = fmt.Sprintf("module %s here, %s on %s", short(d.Module), short(d.PeerModule), d.Peer)
	}
	if d.Plugin == fsm.SessionsNamespace {
		return fmt.Sprintf("the idempotency table (%s) diverges at index %d: %s", d.Plugin, d.Index, what)
	}
	return fmt.Sprintf("plugin %q diverges at index %d: %s", d.Plugin, d.Index, what)
}

func short(h string) string {
	if h == "" {
		return "(empty)"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// DigestCheck is what the last digest check this node took part in found.
type DigestCheck struct {
	Index uint64    `json:"index" msgpack:"index"`
	Time  time.Time `json:"time" msgpack:"time"`
	// Compared lists the nodes this node compared its digests with at
	// Index (as leader: every member that answered with a record; as a
	// follower: the leader); Skipped the members that had none (they had
	// not applied the entry in time, or restored a snapshot past it) or
	// did not answer, with why.
	Compared []string          `json:"compared" msgpack:"compared"`
	Skipped  map[string]string `json:"skipped,omitempty" msgpack:"skipped,omitempty"`
}

// divergences is a node's knowledge of divergence: the last comparison
// with each peer that found a difference.
type divergences struct {
	mu    sync.Mutex
	peers map[string][]Divergence // by peer; absent: the last comparison agreed
	last  DigestCheck
}

// compared records a comparison with peer at index: found replaces what
// was known of peer. It returns the divergences that are new.
func (d *divergences) compared(peer string, found []Divergence) []Divergence {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.peers == nil {
		d.peers = map[string][]Divergence{}
	}
	old := d.peers[peer]
	var fresh []Divergence
	for i, x := range found {
		j := slices.IndexFunc(old, func(o Divergence) bool { return o.Plugin == x.Plugin })
		if j >= 0 {
			found[i].Detected = old[j].Detected // the same alarm, still on
		} else {
			fresh = append(fresh, x)
		}
	}
	if len(found) == 0 {
		delete(d.peers, peer)
	} else {
		d.peers[peer] = found
	}
	return fresh
}

// keep drops what is known of nodes that are no longer members.
func (d *divergences) keep(members map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.peers {
		if !members[p] {
			delete(d.peers, p)
		}
	}
}

func (d *divergences) setLast(c DigestCheck) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.Index >= d.last.Index {
		d.last = c
	}
}

// list returns the divergences known, by peer then plugin.
func (d *divergences) list() []Divergence {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Divergence
	for _, p := range slices.Sorted(maps.Keys(d.peers)) {
		out = append(out, d.peers[p]...)
	}
	return out
}

func (d *divergences) lastCheck() *DigestCheck {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last.Index == 0 {
		return nil
	}
	c := d.last
	c.Compared = slices.Clone(c.Compared)
	c.Skipped = maps.Clone(c.Skipped)
	return &c
}

// Divergences returns the plugins whose state this node found to differ
// from another node's at the same index, at the last comparison with that
// node (empty when every comparison agreed).
func (n *Node) Divergences() []Divergence { return n.diverged.list() }

// LastDigestCheck returns the last digest check this node took part in
// (nil if none yet).
func (n *Node) LastDigestCheck() *DigestCheck { return n.diverged.lastCheck() }

// divergenceSummary is why /healthz reports the node degraded because of
// a divergence ("" if none).
func (n *Node) divergenceSummary() string {
	ds := n.diverged.list()
	if len(ds) == 0 {
		return ""
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return "replicas diverge: " + strings.Join(parts, "; ") + " (see docs/operations.md, \"State divergence\")"
}

// comparedWith records a comparison of this node's digests (mine) with
// peer's at index, logs and counts what it finds.
func (n *Node) comparedWith(peer string, index uint64, mine, theirs map[string]fsm.PluginDigest) []Divergence {
	now := time.Now().UTC()
	var found []Divergence
	for _, name := range fsm.CompareDigests(mine, theirs) {
		a, b := mine[name], theirs[name]
		found = append(found, Divergence{Plugin: name, Index: index, Peer: peer, Digest: a.State, PeerDigest: b.State, Module: a.Module, PeerModule: b.Module, Detected: now})
	}
	n.metrics.digestComparisons.Inc()
	for _, d := range n.diverged.compared(peer, found) {
		n.metrics.divergences.Inc()
		n.log.Warn("STATE DIVERGENCE: a plugin's state differs between two nodes at the same log index; see docs/operations.md",
			"plugin", d.Plugin, "index", d.Index, "digest", d.Digest, "peer", d.Peer, "peer_digest", d.PeerDigest,
			"module", d.Module, "peer_module", d.PeerModule)
	}
	return found
}

// digestWait bounds how long a member waits to apply the check entry.
const digestWait = 10 * time.Second

// answerDigest answers the leader's "digest" RPC: it waits until this node
// has applied the index, compares and answers its digests. Only the leader
// runs checks: a digest from any other member is refused (a hostile member
// would raise a false divergence alarm here, or drop a real one). The
// leader is checked once the entry is applied, when this node has heard
// from the leader that appended it.
func (n *Node) answerDigest(ctx context.Context, peer string, req *peerrpc.DigestBody) (abi.Result, error) {
	wctx, cancel := context.WithTimeout(ctx, digestWait)
	err := n.waitApplied(wctx, req.Index)
	cancel()
	if _, leader := n.raft.LeaderWithID(); string(leader) != peer {
		n.metrics.rpcRefused.Inc()
		n.log.Warn("refused a peer RPC", "peer", peer, "method", peerrpc.Digest.Name, "leader", string(leader),
			"reason", "digest checks come from the leader")
		return abi.Result{}, fmt.Errorf("%w: digest: %s is not this node's leader", ErrForbidden, peer)
	}
	ans := peerrpc.DigestAnswer{Applied: n.fsm.Applied()}
	if err == nil {
		if mine, ok := n.fsm.Digests(req.Index); ok {
			ans.Held, ans.Digests = true, peerrpc.DigestList(mine)
			// A follower compares with the leader only: what it found
			// with earlier leaders (or as leader) is the current leader's
			// to find again.
			n.diverged.keep(map[string]bool{peer: true})
			n.comparedWith(peer, req.Index, mine, peerrpc.DigestMap(req.Digests))
			n.diverged.setLast(DigestCheck{Index: req.Index, Time: time.Now().UTC(), Compared: []string{peer}})
		}
	}
	data, err := abi.Marshal(&ans)
	return abi.Result{Data: data}, err
}

// checkDigestsLoop runs the leader's digest checks every
// Config.DigestCheckInterval, when the log has grown since the last one.
func (n *Node) checkDigestsLoop() {
	t := time.NewTicker(n.cfg.DigestCheckInterval)
	defer t.Stop()
	var last uint64 // applied index after the last check
	for {
		select {
		case <-n.shutdown:
			return
		case <-t.C:
		}
		if !n.isLeader() || n.readyTerm.Load() == 0 || n.fsm.Failure() != "" || n.fsm.Applied() <= last {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout+digestWait+5*time.Second)
		c, err := n.CheckDigests(ctx)
		cancel()
		if err != nil {
			n.log.Debug("digest check failed", "err", err)
			continue
		}
		last = c.Index
	}
}

// CheckDigests runs a digest check now: this node, the leader, appends a
// digest-check entry and compares its digests at that index with every
// other member's (see the package comment above kindDigestCheck). A
// divergence found is recorded and logged (see Divergences); the error
// says only that the check could not be run.
func (n *Node) CheckDigests(ctx context.Context) (DigestCheck, error) {
	if !n.isLeader() {
		return DigestCheck{}, ErrNotLeader
	}
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindDigestCheck})
	if err != nil {
		return DigestCheck{}, err
	}
	if r.Err != nil {
		return DigestCheck{}, r.Err
	}
	if len(r.Res.Data) != 8 {
		return DigestCheck{}, fmt.Errorf("raftkv: digest check: unexpected result %q", r.Res.Data)
	}
	index := binary.BigEndian.Uint64(r.Res.Data)
	mine, ok := n.fsm.Digests(index)
	if !ok {
		return DigestCheck{}, errors.New("raftkv: digest check: no record at the index applied (a snapshot restored meanwhile)")
	}
	body, err := (&peerrpc.DigestBody{Index: index, Digests: peerrpc.DigestList(mine)}).Marshal()
	if err != nil {
		return DigestCheck{}, err
	}
	members, err := n.configuration()
	if err != nil {
		return DigestCheck{}, err
	}
	check := DigestCheck{Index: index, Time: time.Now().UTC(), Compared: []string{}, Skipped: map[string]string{}}
	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		ids[m.id] = true
		if m.id == n.cfg.NodeID {
			continue
		}
		wg.Go(func() {
			ans, err := n.askDigest(ctx, m.addr, body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				check.Skipped[m.id] = err.Error()
			case !ans.Held:
				check.Skipped[m.id] = fmt.Sprintf("no digest at index %d (applied %d)", index, ans.Applied)
			default:
				n.comparedWith(m.id, index, mine, peerrpc.DigestMap(ans.Digests))
				check.Compared = append(check.Compared, m.id)
			}
		})
	}
	wg.Wait()
	n.diverged.keep(ids)
	sort.Strings(check.Compared)
	n.diverged.setLast(check)
	return check, nil
}

func (n *Node) askDigest(ctx context.Context, addr string, body []byte) (peerrpc.DigestAnswer, error) {
	var ans peerrpc.DigestAnswer
	cctx, cancel := context.WithTimeout(ctx, digestWait+5*time.Second)
	defer cancel()
	err := n.callMember(cctx, addr, peerrpc.Digest.Name, body, &ans)
	return ans, err
}
