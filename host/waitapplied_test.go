package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestWaitApplied: WaitApplied returns once a node reflects an index (a
// leader's commit index, which may be its no-op), and times out on an index
// not yet written.
func TestWaitApplied(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	l := c.Leader()
	mustSet(t, l.Node, "k", "v")
	commit := l.Node.Stats().CommitIndex
	for _, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.Node.WaitApplied(ctx, commit)
		cancel()
		if err != nil {
			t.Fatalf("%s: WaitApplied(%d): %v", m.ID, commit, err)
		}
		mustGet(t, m.Node, "k", host.Stale, "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Node.WaitApplied(ctx, commit+1000); !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("WaitApplied of a future index: %v, want ErrTimeout", err)
	}
}
