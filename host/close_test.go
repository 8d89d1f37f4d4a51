package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/datadir"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestCloseBoundedByContext: Close on a leader whose leadership transfer
// cannot complete (its only follower is cut off and behind, so the transfer
// waits for a replication that will not come) returns by its context's
// deadline, and the node still finishes stopping in the background: its data
// directory's lock is released once Raft has stopped, so a new node can
// open the directory.
func TestCloseBoundedByContext(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2-node cluster over SSH")
	}
	c := cluster.Start(t, cluster.Options{Nodes: 2})
	l := c.Leader()
	for _, m := range c.Members {
		if m != l {
			c.Isolate(m)
		}
	}
	// An entry the follower cannot have: the transfer must wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	l.Node.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": "k", "value": "v"}))
	cancel()

	const limit = 300 * time.Millisecond
	ctx, cancel = context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := l.Node.Close(ctx)
	took := time.Since(start)
	t.Logf("Close: %v after %v", err, took)
	if err != nil && !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("Close: %v, want nil or ErrTimeout", err)
	}
	// Generous slack for a loaded machine; an unbounded transfer waits for
	// the election timeout (1 s) or the 3 s cap.
	if took > limit+700*time.Millisecond {
		t.Errorf("Close took %v with a %v context", took, limit)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		lock, err := datadir.Acquire(l.DataDir())
		if err == nil {
			lock.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the data directory is still locked 30 s after Close: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Heal()
}

// TestConfigAdvertise: Validate refuses an advertised address peers cannot
// dial (transport.CheckAdvertisable, the transport's own check), before
// anything is created.
func TestConfigAdvertise(t *testing.T) {
	for adv, ok := range map[string]bool{
		"127.0.25.1:7000": true, "node1:7000": true,
		"0.0.0.0:7000": false, "[::]:7000": false, ":7000": false, "127.0.25.1:0": false, "node1": false,
	} {
		cfg := host.DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdvertiseAddr = "n1", t.TempDir(), "127.0.25.1:7000", adv
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("AdvertiseAddr %q: Validate: %v, want ok %v", adv, err, ok)
		}
	}
}
