package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestWritesDuringRestore: a write still committing when a restore's
// snapshot replaces the state fails as a conflict that says so (the HTTP
// API's 409), not with raft's "snapshot restored while committing log" as
// an internal error (500, attack round 3), and every other write either
// succeeds or is refused.
func TestWritesDuringRestore(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	l := c.Leader()
	mustSet(t, l.Node, "a", "backup")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var backup bytes.Buffer
	if _, err := l.Node.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	var aborted atomic.Int64
	for round := 0; round < 20 && aborted.Load() == 0; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					err := set(t, l.Node, fmt.Sprintf("w%d-%d", w, i), "x")
					switch {
					case err == nil:
					case errors.Is(err, host.ErrConflict) && strings.Contains(err.Error(), "a restore replaced the cluster's state"):
						aborted.Add(1)
					case strings.Contains(err.Error(), "snapshot restored while committing"):
						t.Errorf("a write aborted by the restore: %v (want ErrConflict)", err)
						return
					}
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		if err := l.Node.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
	}
	if aborted.Load() == 0 {
		t.Fatal("no write was committing as a restore replaced the state, in 20 restores: the test did not test")
	}
	t.Logf("%d writes aborted by the restores", aborted.Load())
}
