package host

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// observe records a request that arrived at now with a commit index that
// counts (observeRequest decides that for the node's requests).
func (l *leaderCommits) observe(now time.Time, commit uint64) {
	if commit == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observeLocked(now, commit)
}

// TestLeaderCommits: the target is the leader's commit index as of a
// window ago, or the first one heard while every sample is younger; the
// last one heard stays the target of an idle cluster.
func TestLeaderCommits(t *testing.T) {
	l := &leaderCommits{window: time.Second}
	t0 := time.Unix(1000, 0)
	if _, ok := l.target(t0); ok {
		t.Fatal("a target before any request")
	}
	l.observe(t0, 0) // a request without a commit index tells nothing
	if _, ok := l.target(t0); ok {
		t.Fatal("a target from a commit index of 0")
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		ms     int
		commit uint64
	}{{0, 100}, {5, 999}, {300, 110}, {600, 120}, {900, 130}, {1200, 140}, {1500, 150}} {
		l.observe(at(c.ms), c.commit)
	}
	for _, c := range []struct {
		ms   int
		want uint64
	}{
		{1500, 110}, // the newest sample at least 1 s old (at 300 ms); the one at 5 ms fell in the first's bucket
		{1950, 130}, // at 900 ms
		{9000, 150}, // idle: the last one heard
	} {
		if got, ok := l.target(at(c.ms)); !ok || got != c.want {
			t.Errorf("target at %d ms = %d, %v; want %d", c.ms, got, ok, c.want)
		}
	}
	l = &leaderCommits{window: time.Second}
	l.observe(at(0), 500)
	l.observe(at(200), 600)
	if got, _ := l.target(at(300)); got != 500 {
		t.Errorf("every sample younger than the window: target %d, want the first, 500", got)
	}
}

// TestLeaderCommitsAfterAGap: after more than twice the window without a
// request, the samples before the gap are dropped: the target is the first
// commit index heard after it, not the stale one of a window ago (a
// follower the leader could not replicate to was ready again before it had
// caught up; CI, TestReadinessNeedsReplication).
func TestLeaderCommitsAfterAGap(t *testing.T) {
	l := &leaderCommits{window: time.Second}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for ms := 0; ms <= 2000; ms += 100 {
		l.observe(at(ms), uint64(100+ms/100))
	}
	l.observe(at(10_000), 500) // after an 8 s gap
	if got, ok := l.target(at(10_000)); !ok || got != 500 {
		t.Errorf("target after the gap = %d, %v; want 500, the first commit index heard after it", got, ok)
	}
	l.observe(at(10_900), 600) // no gap: the window rule again
	if got, _ := l.target(at(11_500)); got != 500 {
		t.Errorf("target a window later = %d, want 500", got)
	}
}

// TestLeaderCommitsNewTerm: a leader's commit index counts only once it
// covers an entry of the leader's term. A leader elected a moment ago sends
// the commit index it knew as a follower (here 90, below the 100 its
// predecessor committed) until its election's entry (101) commits; a
// restarted follower that took 90 as its target was ready without entries
// 91-100 (CI, TestRestartFromOlderSnapshotHearsNewMember).
func TestLeaderCommitsNewTerm(t *testing.T) {
	l := &leaderCommits{window: time.Second}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l.observeRequest(at(0), &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 100, PrevLogTerm: 2,
		Entries: []*raft.Log{{Index: 101, Term: 3}}, LeaderCommitIndex: 90})
	if got, ok := l.target(at(0)); ok {
		t.Errorf("target %d from a new leader's commit index below its term's first entry", got)
	}
	if !l.lastHeard().Equal(at(0)) {
		t.Errorf("the request does not count as heard: lastHeard %v", l.lastHeard())
	}
	l.observeRequest(at(20), &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 101, PrevLogTerm: 3, LeaderCommitIndex: 101})
	if got, ok := l.target(at(20)); !ok || got != 101 {
		t.Errorf("target = %d, %v; want 101 once the term's entry is committed", got, ok)
	}
	// A deposed leader's request counts for nothing, not even as heard.
	l.observeRequest(at(40), &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 100, PrevLogTerm: 2, LeaderCommitIndex: 100})
	if got, _ := l.highest(at(40)); got != 101 || !l.lastHeard().Equal(at(20)) {
		t.Errorf("an older term's request counted: highest %d, lastHeard %v", got, l.lastHeard())
	}
	// The next leader: only the previous entry it names is of its term
	// (no entries), and that is enough.
	l.observeRequest(at(500), &raft.AppendEntriesRequest{Term: 4, PrevLogEntry: 150, PrevLogTerm: 4, LeaderCommitIndex: 120})
	if got, _ := l.highest(at(500)); got != 101 {
		t.Errorf("highest = %d, want 101 still: 120 is below the entry of term 4 at 150", got)
	}
	l.observeRequest(at(600), &raft.AppendEntriesRequest{Term: 4, PrevLogEntry: 150, PrevLogTerm: 4, LeaderCommitIndex: 150})
	if got, _ := l.target(at(1700)); got != 150 {
		t.Errorf("target a window later = %d, want 150", got)
	}
}

// TestLeaderCommitsHighest: the highest commit index heard in the window,
// the last request's included even when it fell in a sample's bucket.
func TestLeaderCommitsHighest(t *testing.T) {
	l := &leaderCommits{window: time.Second}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	if _, ok := l.highest(t0); ok {
		t.Fatal("a highest commit index before any request")
	}
	l.observe(at(0), 500)
	l.observe(at(300), 900)
	l.observe(at(305), 950) // in the bucket of 300 ms: not a sample, but heard
	if got, _ := l.highest(at(400)); got != 950 {
		t.Errorf("highest = %d, want 950 (a request within a sample's bucket)", got)
	}
	// A new leader starts below what the old one committed: the old
	// leader's commit index stays the highest for a window.
	l.observe(at(600), 700)
	if got, _ := l.highest(at(700)); got != 950 {
		t.Errorf("highest after a lower commit index = %d, want 950 within the window", got)
	}
	if got, _ := l.highest(at(2000)); got != 700 {
		t.Errorf("highest a window later = %d, want 700", got)
	}
}

// TestLeaderReadsNeedTheTermsBarrier: leader reads pass only while the term
// whose barrier the node applied is the current term, so that readiness left
// from an earlier term (leadership lost and regained before the node ran the
// new term's barrier) lets no read through.
func TestLeaderReadsNeedTheTermsBarrier(t *testing.T) {
	n, ctx := singleLeader(t)
	if err := n.verifyLeader(ctx); err != nil {
		t.Fatalf("ready leader: %v", err)
	}
	term := n.raft.CurrentTerm()
	if got := n.readyTerm.Load(); got != term {
		t.Fatalf("ready for term %d in term %d", got, term)
	}
	n.readyTerm.Store(term - 1) // what a watcher behind by a lost and regained leadership left
	if err := n.verifyLeader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("leader read with the barrier of an earlier term: %v, want ErrNoLeader", err)
	}
	if n.Stats().Ready {
		t.Fatal("ready with the barrier of an earlier term")
	}
	n.readyTerm.Store(term)
	if err := n.verifyLeader(ctx); err != nil || !n.Stats().Ready {
		t.Fatalf("ready again: %v", err)
	}
}

// singleLeader starts a bootstrapped single-node cluster without the kv
// plugin and waits until it leads; the node closes, and ctx (a minute)
// ends, with the test. (Package host's own tests cannot use
// internal/cluster, which imports host.)
func singleLeader(t *testing.T) (*Node, context.Context) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = "n1", t.TempDir(), addr, true
	cfg.PluginCacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")
	cfg.PluginCacheMaxBytes = 0 // the shared test cache is not trimmed (cluster.FastConfig)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n, ctx
}
