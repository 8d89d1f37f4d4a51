package host_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestNotReadyAheadOfLeader: a leader takes a restore while cut off from
// the others (Raft installs the restored snapshot far past the log at once,
// then waits for a no-op to commit) and crashes before anything replicates.
// The others elect a leader with the old state. Restarted, the old leader is
// a follower whose applied index is far ahead of its leader's commit index,
// which cannot replicate to it (its log lacks the entries the leader sends).
// It must not say it is ready: its reads would return the restored state
// the cluster does not have.
func TestNotReadyAheadOfLeader(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		// Time for the isolated leader to take the restore before it
		// steps down; steadier leadership on a loaded machine.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 3*time.Second, 3*time.Second, 3*time.Second
	}})
	old := c.Leader()
	mustSet(t, old.Node, "a", "restored")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var backup bytes.Buffer
	if _, err := old.Node.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	mustSet(t, old.Node, "a", "cluster")
	c.WaitConverged(3)

	c.Isolate(old)
	before := old.Node.AppliedIndex()
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	err := old.Node.Restore(rctx, bytes.NewReader(backup.Bytes()))
	rcancel()
	if err == nil {
		t.Fatal("a restore on an isolated leader committed")
	}
	restored := old.Node.AppliedIndex()
	if restored < before+1<<16 {
		t.Fatalf("the isolated leader did not install the restore (applied %d, %d before): %v", restored, before, err)
	}
	c.Stop(old) // still isolated: a crash to the others
	c.Heal()

	leader := c.LeaderOtherThan(old)
	mustSet(t, leader.Node, "b", "1")
	if got, _ := get(t, leader.Node, "a", host.Leader); got != "cluster" {
		t.Fatalf("a = %q on the new leader, want cluster", got)
	}

	c.Restart(old)
	// Once it hears from the leader (a commit index), it must say why it
	// is not ready, and keep saying it.
	deadline := time.Now().Add(20 * time.Second)
	heard := false
	for time.Now().Before(deadline) {
		ok, why := old.Node.Ready()
		if ok {
			t.Fatalf("the restarted node, applied %d (leader %s at commit ~%d), says it is ready",
				old.Node.AppliedIndex(), leader.ID, leader.Node.AppliedIndex())
		}
		if strings.Contains(why, "ahead of the leader's commit index") {
			heard = true
		} else if heard {
			t.Fatalf("not ready for another reason after the divergence: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !heard {
		_, why := old.Node.Ready()
		t.Fatalf("never said it is ahead of its leader; last reason: %s", why)
	}
	// And it says so in its log, once (docs/operations.md).
	if !c.Logged("level=WARN", "not ready: applied index", "ahead of the leader's commit index") {
		t.Error("no WARN in the node's log that it is ahead of its leader")
	}

	// It stores none of the leader's entries meanwhile: Raft would keep
	// them unapplied and acknowledge them, so they would count towards
	// commits, while in elections the node offers its restore's older
	// last entry and votes for nodes that lack them (an audit lost an
	// acknowledged write that way). So with the third node down, no write
	// commits: the diverged node is no quorum's member.
	var third *cluster.Member
	for _, m := range c.Members {
		if m != old && m != leader {
			third = m
		}
	}
	c.Stop(third)
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	res, err := leader.Node.Apply(wctx, "kv", cmd(t, map[string]any{"op": "SET", "key": "c", "value": "acknowledged?"}))
	wcancel()
	if err == nil {
		t.Fatalf("a write committed with the diverged %s as the only other node up (result %v)", old.ID, res.Err())
	}
	if !c.Logged("level=WARN", "refusing the leader's entries") {
		t.Errorf("%s did not log that it refuses the leader's entries", old.ID)
	}
	c.Restart(third)

	// The way back (docs/operations.md, An interrupted restore): stop the
	// node, move its Raft state aside (its key, ID and trust list stay),
	// start it again: the leader replicates its own state to it.
	c.Stop(old)
	aside := t.TempDir()
	for _, f := range []string{"raft.db", "snapshots"} {
		if err := os.Rename(filepath.Join(old.DataDir(), f), filepath.Join(aside, f)); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(old)
	cluster.Poll(t, time.Minute, func() bool {
		ok, _ := old.Node.Ready()
		got, err := get(t, old.Node, "a", host.Stale)
		return ok && err == nil && got == "cluster"
	}, "the node with its Raft state moved aside never caught up with the leader")
}
