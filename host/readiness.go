package host

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A follower is ready when it has applied what the leader had committed:
// the leader's commit index, which a follower learns only from the
// AppendEntries requests it receives (raft keeps its own commit index
// capped at its last log entry, so it says nothing of a follower that is
// missing entries). observedTransport reads it off the requests on their
// way to Raft.

// commitSample is the leader's commit index as of a request's arrival.
type commitSample struct {
	at     time.Time
	commit uint64 // the first request's of the sample's 10 ms bucket
	high   uint64 // the highest of the bucket's requests
}

// leaderCommits keeps the leader's commit index as of the AppendEntries
// requests of the last window (one sample per 10 ms at most), and of the
// last request before it. Heartbeats carry no commit index (and do not
// pass through observedTransport: Raft answers them on the transport's fast
// path), but a leader with nothing new still sends every follower an
// AppendEntries request every CommitTimeout to 2x CommitTimeout (hashicorp/
// raft's replicate loop; the node's CommitTimeout is at most half of
// HeartbeatTimeout), so a follower the leader can replicate to hears the
// commit index at least once per HeartbeatTimeout.
//
// A leader's commit index counts only once it covers an entry of the
// leader's own term (see observeRequest).
type leaderCommits struct {
	window  time.Duration
	mu      sync.Mutex
	samples []commitSample // oldest first
	last    time.Time      // the last request's arrival

	term      uint64 // the highest leader term heard
	termEntry uint64 // the lowest index heard holding an entry of term in its leader's log; 0: none yet
}

// observeRequest records an AppendEntries request. A leader elected a
// moment ago sends the commit index it knew as a follower, which may be
// below what its predecessor committed, until the entry it appends at its
// election (hashicorp/raft's no-op) commits: a restarted follower that took
// that index as its target would be ready without the last committed
// entries. So a request's commit index counts only when it is at least an
// index at which the request shows an entry of its own term (an entry it
// carries, or the previous entry it names): committing an entry of its term
// commits everything before it, and by Raft's leader completeness this
// leader holds every entry committed before its term. Until then the
// request only counts as heard. A request of an older term (a deposed
// leader's, which Raft refuses) counts for nothing.
func (l *leaderCommits) observeRequest(now time.Time, req *raft.AppendEntriesRequest) {
	if req.LeaderCommitIndex == 0 {
		return // a new cluster's first requests (or a heartbeat) tell nothing
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case req.Term < l.term:
		return
	case req.Term > l.term:
		l.term, l.termEntry = req.Term, 0
	}
	ofTerm := func(index uint64) {
		if index > 0 && (l.termEntry == 0 || index < l.termEntry) {
			l.termEntry = index
		}
	}
	if req.PrevLogTerm == req.Term {
		ofTerm(req.PrevLogEntry)
	}
	for _, e := range req.Entries { // ascending: the first of the term is the lowest
		if e.Term == req.Term {
			ofTerm(e.Index)
			break
		}
	}
	if l.termEntry == 0 || req.LeaderCommitIndex < l.termEntry {
		l.heardLocked(now) // heard, but not yet a commit index to go by
		return
	}
	l.observeLocked(now, req.LeaderCommitIndex)
}

// lastHeard returns when the last request with a commit index arrived, zero
// if none has.
func (l *leaderCommits) lastHeard() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// heardLocked records a request's arrival.
func (l *leaderCommits) heardLocked(now time.Time) {
	if !l.last.IsZero() && now.Sub(l.last) > 2*l.window {
		// After a gap (the leader could not replicate here; readiness said
		// so), what was heard before it says nothing of the leader's commit
		// index now: the target restarts from the next request's, so the
		// node is ready again only once it has caught up with it.
		l.samples = l.samples[:0]
	}
	l.last = now
}

func (l *leaderCommits) observeLocked(now time.Time, commit uint64) {
	l.heardLocked(now)
	if n := len(l.samples); n > 0 && now.Sub(l.samples[n-1].at) < 10*time.Millisecond {
		// Keep the bucket's first sample: a lower bound of the commit index
		// at the bucket's end, never more.
		l.samples[n-1].high = max(l.samples[n-1].high, commit)
		return
	}
	l.samples = append(l.samples, commitSample{now, commit, commit})
	l.pruneLocked(now)
}

// pruneLocked drops the samples older than the window but the newest of
// them.
func (l *leaderCommits) pruneLocked(now time.Time) {
	i := 0
	for i+1 < len(l.samples) && now.Sub(l.samples[i+1].at) > l.window {
		i++
	}
	if i > 0 {
		l.samples = append(l.samples[:0], l.samples[i:]...)
	}
}

// target returns the commit index a follower must have applied to be
// ready: the leader's as of a window ago (the newest sample at least that
// old), or, when every sample is younger, the first one it received. A
// follower that keeps up with a busy leader lags it by less than the window
// and stays ready; an idle cluster's follower must have applied the last
// commit index it was told. False: no request with a commit index yet.
func (l *leaderCommits) target(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	if len(l.samples) == 0 {
		return 0, false
	}
	return l.samples[0].commit, true
}

// highest returns the highest commit index the leader sent in the last
// window (every request's, not only the samples'), and false with no request with
// a commit index yet. A follower applies only what a leader committed, so
// its applied index is at most that: beyond it, the follower has applied
// entries this leader does not have (see readiness). A new leader's commit
// index may start below what the followers applied, for one round trip
// until its first entry commits: the old leader's samples of the window
// cover that.
func (l *leaderCommits) highest(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	if len(l.samples) == 0 {
		return 0, false
	}
	var h uint64
	for _, s := range l.samples {
		h = max(h, s.high)
	}
	return h, true
}

// observedTransport is the node's Raft transport with the AppendEntries
// requests it delivers to Raft observed on the way.
type observedTransport struct {
	*raft.NetworkTransport
	rpcs     chan raft.RPC
	commits  *leaderCommits
	shutdown <-chan struct{}
	// refuse, for tests only (hostseam.SetRefuseAppends), answers the
	// AppendEntries requests with an error, unseen by Raft, while it
	// returns true: a leader that cannot replicate to this node, whose
	// heartbeats still arrive.
	refuse func() bool
	// diverged, if set, is asked about every AppendEntries request after
	// it is observed; a request it returns an error for is answered with
	// that error, unseen by Raft (Node.divergentAppend).
	diverged func(*raft.AppendEntriesRequest) error
}

// errRefused answers the requests observedTransport.refuse turns away.
var errRefused = errors.New("raftkv: AppendEntries refused (test hook)")

func (t *observedTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// run forwards the transport's requests to Raft until shutdown.
func (t *observedTransport) run() {
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
				if t.refuse != nil && t.refuse() {
					rpc.Respond(nil, errRefused)
					continue
				}
				t.commits.observeRequest(time.Now(), req)
				if t.diverged != nil {
					if err := t.diverged(req); err != nil {
						rpc.Respond(nil, err)
						continue
					}
				}
			}
			select {
			case t.rpcs <- rpc:
			case <-t.shutdown:
				return
			}
		case <-t.shutdown:
			return
		}
	}
}

// divergentAppend returns an error when Raft would store an entry of req at
// an index this node has already applied but does not hold with the entry's
// term: its state at that index came from elsewhere than the leader's log.
// That happens after a restore (Raft's user restore installs the snapshot
// on the leader alone, at an index past its log) that a crash interrupted
// before the followers got it: the others elect a leader without it, whose
// entries fill the indexes below the restore's (docs/operations.md, An
// interrupted restore).
//
// Such a node must not store those entries. Raft would keep them in its
// log without applying them (they are at or below its applied index) and
// acknowledge them, so they would count towards the leader's commits; yet
// in elections it offers the restore's snapshot as its last entry, whose
// older term lets it vote for a candidate lacking the entries it
// acknowledged. An audit lost an acknowledged write that way: the diverged
// node and the leader committed it, the third node, which lacked it, won
// the next election with the diverged node's vote. Refused, the diverged
// node counts for nothing until it is rebuilt; its commits are the other
// nodes' alone.
//
// Raft stores a request's entries only once its previous entry matches:
// a request that would not pass that check is left for Raft to refuse.
// In normal operation no entry at or below the applied index is new to a
// follower: applied entries are committed, a leader holds every committed
// entry, and a follower whose log lacks them (it installed a snapshot)
// is sent entries after its snapshot only.
func (n *Node) divergentAppend(req *raft.AppendEntriesRequest) error {
	applied := n.fsm.Applied()
	if len(req.Entries) == 0 || req.Entries[0].Index > applied || req.PrevLogEntry >= applied {
		return nil
	}
	var l raft.Log
	if req.PrevLogEntry > 0 {
		if err := n.logs.GetLog(req.PrevLogEntry, &l); err != nil || l.Term != req.PrevLogTerm {
			return nil // Raft refuses it: the previous entry does not match
		}
	}
	for _, e := range req.Entries {
		if e.Index > applied {
			return nil
		}
		err := n.logs.GetLog(e.Index, &l)
		switch {
		case errors.Is(err, raft.ErrLogNotFound):
			return n.refuseDiverged(applied, e.Index, "no entry there")
		case err != nil:
			return nil // Raft meets the same error
		case l.Term != e.Term:
			return n.refuseDiverged(applied, e.Index, fmt.Sprintf("an entry of term %d where the leader's is of term %d", l.Term, e.Term))
		}
	}
	return nil
}

// refuseDiverged logs, once, why the node refuses its leader's entries,
// and returns the error the leader gets.
func (n *Node) refuseDiverged(applied, index uint64, holds string) error {
	err := fmt.Errorf("raftkv: %s refuses these entries: it applied index %d, and at index %d it holds %s: "+
		"its state is not the leader's (a diverged log, e.g. after a restore interrupted by a crash); "+
		"see 'An interrupted restore' in docs/operations.md", n.cfg.NodeID, applied, index, holds)
	if n.divergedWarned.CompareAndSwap(false, true) {
		n.log.Warn("refusing the leader's entries: this node has applied entries the leader does not have; "+
			"it takes no part in commits until its Raft state is rebuilt (docs/operations.md, An interrupted restore)",
			"applied", applied, "index", index, "holds", holds)
	}
	return err
}

// readiness says whether the node serves reads that reflect the cluster's
// state, and if not, why ("" when ready).
func (n *Node) readiness() string {
	if f := n.fsm.Failure(); f != "" {
		return "stopped applying the log: " + f
	}
	if n.cfg.DefaultPlugin != nil && n.fsm.Plugin(DefaultPluginName) == nil {
		return "the default plugin " + DefaultPluginName + " is not loaded yet"
	}
	_, leaderID := n.raft.LeaderWithID()
	switch {
	case leaderID == "":
		if why := n.Removed(); why != "" {
			return why
		}
		return "no known leader"
	case n.isLeader():
		if !n.leaderReady() {
			return "leader still applying the entries of earlier terms"
		}
		return ""
	}
	// Raft's follower calls an election after a random 1x to 2x
	// HeartbeatTimeout without contact: past 2x, the leader is gone for it.
	if since := time.Since(n.raft.LastContact()); since > 2*n.cfg.HeartbeatTimeout {
		return "no contact with the leader for " + since.Round(time.Millisecond).String()
	}
	now := time.Now()
	target, ok := n.commits.target(now)
	if !ok {
		return "no commit index from the leader yet"
	}
	applied := n.fsm.Applied()
	if highest, _ := n.commits.highest(now); applied > highest {
		why := fmt.Sprintf("applied index %d is ahead of the leader's commit index %d: this node has applied "+
			"entries the leader does not have (a diverged log, e.g. after a restore interrupted by a crash) "+
			"and the leader cannot replicate to it; see 'An interrupted restore' in docs/operations.md", applied, highest)
		// Right after a restore or a snapshot install the leader's next
		// request brings its commit index up: warn only when it lasts.
		since := n.aheadSince.Load()
		if since == 0 {
			n.aheadSince.CompareAndSwap(0, now.UnixNano())
		} else if since > 0 && now.Sub(time.Unix(0, since)) > n.cfg.HeartbeatTimeout &&
			n.aheadSince.CompareAndSwap(since, -1) {
			n.log.Warn("not ready: "+why, "applied", applied, "leader_commit", highest, "leader", string(leaderID))
		}
		return why
	}
	n.aheadSince.Store(0)
	// Heartbeats alone keep LastContact fresh: a follower the leader cannot
	// replicate to (its AppendEntries requests fail, or do not arrive) would
	// otherwise stay ready on the last commit index it heard, however old.
	// (A diverged log, above, is the more precise reason of the two.)
	if since := now.Sub(n.commits.lastHeard()); since > 2*n.cfg.HeartbeatTimeout {
		return "the leader's heartbeats arrive but none of its AppendEntries requests has for " +
			since.Round(time.Millisecond).String() + ": it cannot replicate to this node"
	}
	if applied < target && !n.onlyHostEntries(applied+1, target) {
		return "catching up with the leader's commit index"
	}
	return ""
}

// Removed says why this node takes no part in the cluster when Raft's
// latest configuration has members and this node is not one of them: it
// was removed ('raftkv remove') and restarted on its data dir, which no
// leader contacts any more. "" otherwise, or when Raft does not answer
// within a second.
func (n *Node) Removed() string {
	f := n.raft.GetConfiguration()
	done := make(chan struct{})
	go func() { f.Error(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		return ""
	}
	if f.Error() != nil {
		return ""
	}
	servers := f.Configuration().Servers
	if len(servers) == 0 {
		return ""
	}
	ids := make([]string, 0, len(servers))
	for _, s := range servers {
		if string(s.ID) == n.cfg.NodeID {
			return ""
		}
		ids = append(ids, string(s.ID))
	}
	return fmt.Sprintf("this node (%s) was removed from the cluster: its last configuration lists %s and not this node, "+
		"and no leader contacts it. To bring it back, stop it, move its data dir aside and start it with an empty "+
		"data dir and --join", n.cfg.NodeID, strings.Join(ids, ", "))
}
