package host_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/logtest"
)

// recordedCluster starts a 3-node cluster whose nodes also log, from debug
// level up, to a Recorder each (by node ID).
func recordedCluster(t *testing.T) (*cluster.Cluster, map[string]*logtest.Recorder) {
	recs := map[string]*logtest.Recorder{}
	var mu sync.Mutex
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		r := logtest.New(slog.LevelDebug)
		mu.Lock()
		recs[cfg.NodeID] = r
		mu.Unlock()
		cfg.Logger = slog.New(slog.NewMultiHandler(cfg.Logger.Handler(), r))
	}})
	return c, recs
}

// TestLogsFollowerDown: a leader whose follower is down logs the first
// error about it at its level and then counts, instead of ~2.4 ERROR lines a
// second (raft retries with backoff, each retry a line).
func TestLogsFollowerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c, recs := recordedCluster(t)
	l := c.Leader()
	down := c.Followers()[0]
	addr := down.Proxy.Addr()
	c.Crash(down)
	about := func(r logtest.Record) bool { return strings.Contains(r.Attrs["peer"]+r.Attrs["target"], addr) }
	rec := recs[l.ID]
	// Wait until raft has failed to reach the follower many times.
	cluster.Poll(t, 60*time.Second, func() bool {
		return len(rec.Records(about)) >= 20
	}, "the leader did not retry the follower 20 times: %v", rec.Records(about))
	loud := rec.Records(func(r logtest.Record) bool { return about(r) && r.Level >= slog.LevelWarn })
	// One line per kind of failure (heartbeat, appendEntries, pipeline, ...).
	kinds := map[string]bool{}
	for _, r := range loud {
		if kinds[r.Message] {
			t.Errorf("logged twice within 30 s: %s", r)
		}
		kinds[r.Message] = true
	}
	if len(loud) == 0 {
		t.Fatal("the follower being down was not logged at all")
	}
	t.Logf("%d occurrences, %d logged at warn or error", len(rec.Records(about)), len(loud))
}

// TestLogsCleanShutdown: a whole cluster stopped gracefully, all nodes at
// once (as examples/cluster/stop.sh does), logs no error.
func TestLogsCleanShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c, recs := recordedCluster(t)
	l := c.Leader()
	for i := range 20 {
		if _, err := l.Node.Apply(context.Background(), "kv", cmd(t, map[string]any{"op": "SET", "key": "k", "value": []byte{byte(i)}})); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Go(func() { c.Stop(m) })
	}
	wg.Wait()
	for id, r := range recs {
		for _, e := range r.Records(logtest.AtLeast(slog.LevelError)) {
			t.Errorf("%s logged an error while shutting down cleanly: %s", id, e)
		}
	}
}

// TestPluginLogNotRepeatedOnReplay: a plugin's log line is logged when its
// entry applies, not again when the restarted node replays the entry from
// its log, and a new entry's line is logged after the restart.
func TestPluginLogNotRepeatedOnReplay(t *testing.T) {
	var base slog.Handler
	first, second := logtest.New(slog.LevelInfo), logtest.New(slog.LevelInfo)
	c := cluster.Start(t, cluster.Options{Nodes: 1, Configure: func(cfg *host.Config) {
		base = cfg.Logger.Handler()
		cfg.Logger = slog.New(slog.NewMultiHandler(base, first))
	}})
	m := c.Leader()
	deploySlow(t, m.Node, "slow", host.SlowWasm(t, "1"))
	spins := func(r *logtest.Recorder) int {
		return len(r.Records(func(r logtest.Record) bool { return strings.Contains(r.Message, "spinning in raftkv_apply") }))
	}
	apply := func(data string) {
		t.Helper()
		if res, err := c.Leader().Node.Apply(context.Background(), "slow", []byte(data)); err != nil || !res.OK() {
			t.Fatalf("%s: %+v %v", data, res, err)
		}
	}
	apply("spin 10 a")
	if n := spins(first); n != 1 {
		t.Fatalf("the entry's log line was logged %d times, want 1", n)
	}
	m.Reconfigure(func(cfg *host.Config) { cfg.Logger = slog.New(slog.NewMultiHandler(base, second)) })
	c.Restart(m)
	c.WaitConverged(1)
	apply("set b 1") // the replay is done: this entry follows it
	if n := spins(second); n != 0 {
		t.Fatalf("the replayed entry's log line was logged again (%d times)", n)
	}
	apply("spin 10 c")
	if n := spins(second); n != 1 {
		t.Fatalf("a new entry after the restart: its log line logged %d times, want 1", n)
	}
}
